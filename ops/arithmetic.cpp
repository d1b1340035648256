#include "arithmetic.hpp"

#include <cmath>

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "math.hpp"

namespace xg {

namespace {

// Promotes a and b to a common dtype and applies f elementwise with broadcasting.
template <class F>
Array binary_values(const Array& a, const Array& b, const char* op, F f, bool floating_only = false,
                    std::int64_t grain = detail::kGrainCheap) {
    const Dtype d = promote(a.dtype(), b.dtype());
    if (floating_only && !is_floating(d))
        throw DtypeError(std::string(op) + ": expected floating-point tensors (float32 or float64), got " +
                         dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()) + " tensors of shapes " +
                         shape_str(a.shape()) + " and " + shape_str(b.shape()));
    const Array A = a.to(d), B = b.to(d);
    Array out(broadcast_shape(A.shape(), B.shape(), op), d);
    detail::dispatch(d, op, [&]<class T>() { detail::binary_broadcast<T, T>(A, B, out, f, grain); });
    return out;
}

void check_defined(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": an operand is undefined");
}

Tensor zeros_scalar(const Tensor& like) { return scalar_like(0.0, like); }

}  // namespace

Tensor scalar_like(double v, const Tensor& like) {
    const Dtype d = like.dtype() == Dtype::i64 && v != std::floor(v) ? Dtype::f32 : like.dtype();
    return Tensor(engine::full({}, d, v));
}

Tensor add(const Tensor& a, const Tensor& b) {
    check_defined(a, "add"), check_defined(b, "add");
    return make_result("add", binary_values(a.array(), b.array(), "add", [](auto x, auto y) { return x + y; }), {a, b},
                       [](const Tensor& g, const Tensor&) {
                           return std::vector<Tensor>{g, g};
                       });
}

Tensor sub(const Tensor& a, const Tensor& b) {
    check_defined(a, "sub"), check_defined(b, "sub");
    return make_result("sub", binary_values(a.array(), b.array(), "sub", [](auto x, auto y) { return x - y; }), {a, b},
                       [](const Tensor& g, const Tensor&) {
                           return std::vector<Tensor>{g, neg(g)};
                       });
}

Tensor mul(const Tensor& a, const Tensor& b) {
    check_defined(a, "mul"), check_defined(b, "mul");
    Array y = binary_values(a.array(), b.array(), "mul", [](auto x, auto z) { return x * z; });
    if (!needs_record({a, b})) return Tensor(std::move(y));
    // Save only the operand whose partner needs a gradient.
    Saved sa(b.requires_grad() ? a : Tensor(), "mul"), sb(a.requires_grad() ? b : Tensor(), "mul");
    return make_result("mul", std::move(y), {a, b}, [sa, sb](const Tensor& g, const Tensor&) {
        const Tensor& av = sa.get();
        const Tensor& bv = sb.get();
        return std::vector<Tensor>{bv.defined() ? mul(g, bv) : Tensor(), av.defined() ? mul(g, av) : Tensor()};
    });
}

Tensor div(const Tensor& a, const Tensor& b) {
    check_defined(a, "div"), check_defined(b, "div");
    // True division: int64 / int64 gives float32, as in PyTorch.
    if (a.dtype() == Dtype::i64 && b.dtype() == Dtype::i64) return div(a.to(Dtype::f32), b.to(Dtype::f32));
    Array y = binary_values(
        a.array(), b.array(), "div", [](auto x, auto z) { return x / z; }, true);
    if (!needs_record({a, b})) return Tensor(std::move(y));
    Saved sa(b.requires_grad() ? a : Tensor(), "div"), sb(b, "div");
    return make_result("div", std::move(y), {a, b}, [sa, sb](const Tensor& g, const Tensor&) {
        const Tensor& bv = sb.get();
        const Tensor ga = div(g, bv);
        Tensor gb;
        if (sa.get().defined()) gb = neg(div(mul(ga, sa.get()), bv));  // -g a / b^2
        return std::vector<Tensor>{ga, gb};
    });
}

Tensor neg(const Tensor& a) {
    check_defined(a, "neg");
    Array y(a.shape(), a.dtype());
    detail::dispatch(a.dtype(), "neg", [&]<class T>() {
        const T* x = a.array().data<T>();
        T* p = y.data<T>();
        detail::parallel_for(a.numel(), detail::scaled_grain<T>(detail::kGrainCheap),
                             [&](std::int64_t s, std::int64_t e) {
                                 for (std::int64_t i = s; i < e; ++i) p[i] = -x[i];
                             });
    });
    return make_result("neg", std::move(y), {a},
                       [](const Tensor& g, const Tensor&) { return std::vector<Tensor>{neg(g)}; });
}

Tensor pow(const Tensor& a, const Tensor& b) {
    check_defined(a, "pow"), check_defined(b, "pow");
    Array y = binary_values(
        a.array(), b.array(), "pow", [](auto x, auto z) { return std::pow(x, z); }, true, detail::kGrainLibm);
    if (!needs_record({a, b})) return Tensor(std::move(y));
    Saved sa(a, "pow"), sb(b, "pow");
    const bool need_a = a.requires_grad(), need_b = b.requires_grad();
    return make_result(
        "pow", std::move(y), {a, b},
        [sa, sb, need_a, need_b](const Tensor& g, const Tensor& out) {
            const Tensor& av = sa.get();
            const Tensor& bv = sb.get();
            Tensor ga, gb;
            const Tensor zero = zeros_scalar(av), one = scalar_like(1.0, av);
            // d/da a^b = b a^(b-1), taken as 0 where b == 0 (PyTorch's convention: a^0 is constant,
            // also at a == 0 where a^(-1) is inf).
            if (need_a) ga = mul(g, where(eq(bv, zero), zero, mul(bv, pow(av, sub(bv, one)))));
            // d/db a^b = a^b log a, taken as 0 where a == 0 (PyTorch's convention). log is taken of a
            // safe value there, so that second derivatives stay finite too.
            if (need_b) {
                const Tensor a0 = eq(av, zero);
                gb = mul(g, where(a0, zero, mul(out, log(where(a0, one, av)))));
            }
            return std::vector<Tensor>{ga, gb};
        },
        true);
}

Tensor pow(const Tensor& a, double e) {
    check_defined(a, "pow");
    detail::require_floating(a.array(), "pow");
    Array y(a.shape(), a.dtype());
    detail::dispatch_floating(a.dtype(), "pow", [&]<class T>() {
        const T* x = a.array().data<T>();
        T* p = y.data<T>();
        const T te = static_cast<T>(e);
        const std::int64_t grain = detail::scaled_grain<T>(e == 2.0 ? detail::kGrainCheap : detail::kGrainLibm);
        detail::parallel_for(a.numel(), grain, [&](std::int64_t s, std::int64_t f) {
            if (e == 2.0)
                for (std::int64_t i = s; i < f; ++i) p[i] = x[i] * x[i];
            else
                for (std::int64_t i = s; i < f; ++i) p[i] = std::pow(x[i], te);
        });
    });
    if (!needs_record({a})) return Tensor(std::move(y));
    Saved sa(a, "pow");
    return make_result("pow", std::move(y), {a}, [sa, e](const Tensor& g, const Tensor&) {
        if (e == 0.0) return std::vector<Tensor>{mul(g, zeros_scalar(g))};
        const Tensor& x = sa.get();
        return std::vector<Tensor>{mul(g, mul(scalar_like(e, x), e == 2.0 ? x : pow(x, e - 1.0)))};
    });
}

Tensor pow(double base, const Tensor& b) { return pow(scalar_like(base, b), b); }

namespace {
// Gradient share of `a` in maximum/minimum: 1 where a wins, 1/2 at ties, 0 where b wins.
Tensor winner_share(const Tensor& a, const Tensor& b, bool is_max) {
    NoGradGuard ng;
    const Tensor win = is_max ? gt(a, b) : lt(a, b);
    return add(win, mul(eq(a, b), scalar_like(0.5, a)));
}

Tensor extreme(const Tensor& a, const Tensor& b, bool is_max) {
    const char* op = is_max ? "maximum" : "minimum";
    check_defined(a, op), check_defined(b, op);
    Array y = binary_values(a.array(), b.array(), op, [is_max](auto x, auto z) {
        if constexpr (std::is_floating_point_v<decltype(x)>)
            if (std::isnan(x) || std::isnan(z)) return x + z;  // NaN propagates
        return is_max ? (x > z ? x : z) : (x < z ? x : z);
    });
    if (!needs_record({a, b})) return Tensor(std::move(y));
    const Tensor share = winner_share(a.detach(), b.detach(), is_max);
    return make_result(op, std::move(y), {a, b}, [share](const Tensor& g, const Tensor&) {
        return std::vector<Tensor>{mul(g, share), mul(g, sub(scalar_like(1.0, share), share))};
    });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extreme(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extreme(a, b, false); }

Tensor clamp(const Tensor& x, double lo, double hi) {
    check_defined(x, "clamp");
    if (std::isnan(lo) || std::isnan(hi)) throw ValueError("clamp: a bound is NaN");
    if (lo > hi)
        throw ValueError("clamp: min " + std::to_string(lo) + " is greater than max " + std::to_string(hi) +
                         " (input shape " + shape_str(x.shape()) + ")");
    const bool record = needs_record({x});
    Array y(x.shape(), x.dtype());
    Array mask = record ? Array(x.shape(), x.dtype()) : Array();
    detail::dispatch(x.dtype(), "clamp", [&]<class T>() {
        const T* px = x.array().data<T>();
        T* py = y.data<T>();
        T* pm = record ? mask.data<T>() : nullptr;
        if constexpr (std::is_floating_point_v<T>) {
            const T l = static_cast<T>(lo), h = static_cast<T>(hi);
            detail::parallel_for(x.numel(), detail::scaled_grain<T>(detail::kGrainCheap),
                                 [&](std::int64_t s, std::int64_t e) {
                                     for (std::int64_t i = s; i < e; ++i) {
                                         const T v = px[i];
                                         py[i] = v < l ? l : (v > h ? h : v);  // NaN stays NaN
                                         if (pm) pm[i] = (v >= l && v <= h) ? T(1) : T(0);
                                     }
                                 });
        } else {
            // Integer input: compare in double (the bounds may be infinite or fractional).
            const T l = static_cast<T>(std::ceil(std::max(lo, -9.2e18))),
                    h = static_cast<T>(std::floor(std::min(hi, 9.2e18)));
            detail::parallel_for(x.numel(), detail::scaled_grain<T>(detail::kGrainCheap),
                                 [&](std::int64_t s, std::int64_t e) {
                                     for (std::int64_t i = s; i < e; ++i)
                                         py[i] = px[i] < l ? l : (px[i] > h ? h : px[i]);
                                 });
        }
    });
    if (!record) return Tensor(std::move(y));
    const Tensor m(mask);
    return make_result("clamp", std::move(y), {x},
                       [m](const Tensor& g, const Tensor&) { return std::vector<Tensor>{mul(g, m)}; });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
    check_defined(cond, "where"), check_defined(a, "where"), check_defined(b, "where");
    const Dtype d = promote(a.dtype(), b.dtype());
    const Array A = a.array().to(d), B = b.array().to(d);
    const Shape s = broadcast_shape(broadcast_shape(cond.shape(), A.shape(), "where"), B.shape(), "where");
    Array y(s, d);
    detail::dispatch(cond.dtype(), "where", [&]<class C>() {
        detail::dispatch(d, "where", [&]<class T>() {
            detail::ternary_broadcast<C, T, T, T>(cond.array(), A, B, y,
                                                  [](C c, T x, T z) { return c != C(0) ? x : z; });
        });
    });
    if (!needs_record({a, b})) return Tensor(std::move(y));
    const Tensor c = cond.detach();
    return make_result("where", std::move(y), {a, b}, [c](const Tensor& g, const Tensor&) {
        const Tensor z = zeros_scalar(g);
        return std::vector<Tensor>{where(c, g, z), where(c, z, g)};
    });
}

#define XG_COMPARISON(name, expr)                                                                    \
    Tensor name(const Tensor& a, const Tensor& b) {                                                  \
        check_defined(a, #name), check_defined(b, #name);                                            \
        return Tensor(binary_values(a.array(), b.array(), #name,                                     \
                                    [](auto x, auto y) { return static_cast<decltype(x)>(expr); })); \
    }
XG_COMPARISON(eq, x == y)
XG_COMPARISON(ne, x != y)
XG_COMPARISON(lt, x < y)
XG_COMPARISON(le, x <= y)
XG_COMPARISON(gt, x > y)
XG_COMPARISON(ge, x >= y)
#undef XG_COMPARISON

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

}  // namespace xg

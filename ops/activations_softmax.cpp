// ops/: glu and the softmax family (softmax, log_softmax, softmin) with their backward ops.
#include "activation_defs.hpp"

namespace xg {
using namespace activation_defs;

// --- glu -------------------------------------------------------------------------------------------
namespace {
struct AxisSplit {
    int axis = 0;
    std::int64_t outer = 1, len = 1, inner = 1;
};
AxisSplit split_at(const Shape& s, std::int64_t axis, const char* op) {
    AxisSplit a;
    a.axis = normalize_axis(axis, s.size(), op);
    for (int i = 0; i < a.axis; ++i) a.outer *= s[i];
    a.len = s[a.axis];
    for (std::size_t i = a.axis + 1; i < s.size(); ++i) a.inner *= s[i];
    return a;
}

// Calls f(o, k, count, t) over [0, outer * n) split into runs inside one outer block.
template <class F>
void for_segments(std::int64_t outer, std::int64_t n, std::int64_t grain, F f) {
    detail::parallel_for(outer * n, grain, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t t = b; t < e;) {
            const std::int64_t o = t / n, k = t % n, cnt = std::min(e - t, n - k);
            f(o, k, cnt, t);
            t += cnt;
        }
    });
}

Tensor glu_backward(const Tensor& g, const Tensor& x, std::int64_t axis);

// The rule of glu_backward, with differentiable ops: a, b halves, s = sigmoid(b), s' = s (1 - s),
//   out_a = g s, out_b = g a s'  =>  d/dg = gg_a s + gg_b a s',  d/da = gg_b g s',
//   d/db = gg_a g s' + gg_b g a s' (1 - 2 s).
Grads glu_double_backward(const Tensor& gg, const Tensor& g, const Tensor& x, int axis, bool need_g, bool need_x) {
    const std::int64_t half = x.size(axis) / 2;
    const auto xs = split(x, half, axis);
    const auto ggs = split(gg, half, axis);
    const Tensor &a = xs[0], &b = xs[1], &gga = ggs[0], &ggb = ggs[1];
    const Tensor s = sigmoid(b);
    const Tensor ds = s * (1.0 - s);
    Tensor dg, dx;
    if (need_g) dg = gga * s + ggb * a * ds;
    if (need_x) {
        const Tensor da = ggb * g * ds;
        const Tensor db = gga * g * ds + ggb * g * a * ds * (1.0 - 2.0 * s);
        dx = concat({da, db}, axis);
    }
    return {dg, dx};
}

Tensor glu_backward(const Tensor& g, const Tensor& x, std::int64_t axis_in) {
    const AxisSplit sp = split_at(x.shape(), axis_in, "glu_backward");
    const std::int64_t half = sp.len / 2, n = half * sp.inner;
    Shape gshape = x.shape();
    gshape[sp.axis] = half;
    if (g.shape() != gshape)
        throw ShapeError("glu_backward: gradient shape " + shape_str(g.shape()) +
                         " does not match glu's output shape " + shape_str(gshape));
    const Dtype d = promote(g.dtype(), x.dtype());
    const Array ga = g.array().to(d), xa = x.array().to(d);
    Array r(x.shape(), d);
    detail::dispatch_floating(d, "glu_backward", [&]<class T>() {
        using B = xsimd::batch<T>;
        constexpr std::int64_t W = B::size;
        const T* pg = ga.data<T>();
        const T* px = xa.data<T>();
        T* pr = r.data<T>();
        for_segments(
            sp.outer, n, kGrainTranscendental, [&](std::int64_t o, std::int64_t k, std::int64_t cnt, std::int64_t t) {
                const T* a = px + o * 2 * n + k;
                const T* b = a + n;
                const T* gp = pg + t;
                T* ra = pr + o * 2 * n + k;
                T* rb = ra + n;
                auto body = [](auto gv, auto av, auto bv, auto& oa, auto& ob) {
                    const auto s = xg::sigmoid(bv);
                    oa = gv * s;
                    ob = gv * av * (s * (1 - s));
                };
                std::int64_t i = 0;
                for (; i + W <= cnt; i += W) {
                    B oa, ob;
                    body(B::load_unaligned(gp + i), B::load_unaligned(a + i), B::load_unaligned(b + i), oa, ob);
                    oa.store_unaligned(ra + i);
                    ob.store_unaligned(rb + i);
                }
                for (; i < cnt; ++i) body(gp[i], a[i], b[i], ra[i], rb[i]);
            });
    });
    if (!needs_record({g, x})) return Tensor(std::move(r));
    const bool need_g = g.requires_grad(), need_x = x.requires_grad();
    Saved sg(g, "glu_backward"), sx(x, "glu_backward");
    const int axis = sp.axis;
    return make_result("glu_backward", std::move(r), {g, x},
                       [sg, sx, axis, need_g, need_x](const Tensor& gg, const Tensor&) {
                           return glu_double_backward(gg, sg.get(), sx.get(), axis, need_g, need_x);
                       });
}
}  // namespace

Tensor glu(const Tensor& x, std::int64_t axis_in) {
    detail::require_defined(x, "glu");
    detail::require_floating(x.dtype(), "glu");
    if (x.ndim() == 0) throw ShapeError("glu: the input must have at least one dimension, got a 0-d tensor");
    const AxisSplit sp = split_at(x.shape(), axis_in, "glu");
    if (sp.len % 2 != 0)
        throw ShapeError("glu: dimension " + std::to_string(sp.axis) + " of shape " + shape_str(x.shape()) +
                         " must have an even size, got " + std::to_string(sp.len));
    const std::int64_t half = sp.len / 2, n = half * sp.inner;
    Shape out_shape = x.shape();
    out_shape[sp.axis] = half;
    Array y(out_shape, x.dtype());
    detail::dispatch_floating(x.dtype(), "glu", [&]<class T>() {
        const T* px = x.array().data<T>();
        T* py = y.data<T>();
        auto f = [](auto a, auto b) { return a * xg::sigmoid(b); };
        for_segments(sp.outer, n, kGrainTranscendental,
                     [&](std::int64_t o, std::int64_t k, std::int64_t cnt, std::int64_t t) {
                         const T* a = px + o * 2 * n + k;
                         detail::simd_map2(a, a + n, py + t, cnt, f);
                     });
    });
    if (!needs_record({x})) return Tensor(std::move(y));
    Saved sx(x, "glu");
    const int axis = sp.axis;
    return make_result("glu", std::move(y), {x},
                       [sx, axis](const Tensor& g, const Tensor&) { return Grads{glu_backward(g, sx.get(), axis)}; });
}

// --- softmax family --------------------------------------------------------------------------------
namespace {
template <class V, class T>
V lane_load(const T* p) {
    if constexpr (std::is_same_v<V, T>)
        return *p;
    else
        return V::load_unaligned(p);
}
template <class V, class T>
void lane_store(T* p, const V& v) {
    if constexpr (std::is_same_v<V, T>)
        *p = v;
    else
        v.store_unaligned(p);
}

enum class RowOp { softmax, log_softmax, softmax_backward, log_softmax_backward };

// One softmax-family operation on `lanes` independent rows at once: V = a batch holds W rows that
// are adjacent in memory (the axis is not the last one), V = T one row; elements are `stride` apart.
// x: input (forward) or output y (backward); g: upstream gradient (backward only).
template <class V, class T>
void row_op(RowOp op, T sign, const T* x, const T* g, T* out, std::int64_t len, std::int64_t stride) {
    if (op == RowOp::softmax || op == RowOp::log_softmax) {
        V m = V(-std::numeric_limits<T>::infinity());
        for (std::int64_t j = 0; j < len; ++j) {
            const V v = lane_load<V>(x + j * stride) * sign;
            m = xg::where(v > m, v, m);
        }
        V s = V(T(0));
        if (op == RowOp::softmax) {
            for (std::int64_t j = 0; j < len; ++j) {
                const V e = xg::exp(lane_load<V>(x + j * stride) * sign - m);
                lane_store(out + j * stride, e);
                s = s + e;
            }
            const V r = V(T(1)) / s;
            for (std::int64_t j = 0; j < len; ++j) lane_store(out + j * stride, lane_load<V>(out + j * stride) * r);
        } else {
            for (std::int64_t j = 0; j < len; ++j) s = s + xg::exp(lane_load<V>(x + j * stride) * sign - m);
            const V ls = m + xg::log(s);
            for (std::int64_t j = 0; j < len; ++j)
                lane_store(out + j * stride, lane_load<V>(x + j * stride) * sign - ls);
        }
    } else if (op == RowOp::softmax_backward) {
        V dot = V(T(0));
        for (std::int64_t j = 0; j < len; ++j) dot = dot + lane_load<V>(g + j * stride) * lane_load<V>(x + j * stride);
        for (std::int64_t j = 0; j < len; ++j)
            lane_store(out + j * stride, lane_load<V>(x + j * stride) * (lane_load<V>(g + j * stride) - dot) * sign);
    } else {
        V s = V(T(0));
        for (std::int64_t j = 0; j < len; ++j) s = s + lane_load<V>(g + j * stride);
        for (std::int64_t j = 0; j < len; ++j)
            lane_store(out + j * stride, lane_load<V>(g + j * stride) - xg::exp(lane_load<V>(x + j * stride)) * s);
    }
}

// The same on one contiguous row, vectorised along the row.
template <class T>
void contiguous_row_op(RowOp op, T sign, const T* x, const T* g, T* out, std::int64_t len) {
    using B = xsimd::batch<T>;
    constexpr std::int64_t W = B::size;
    const std::int64_t nv = len / W * W;
    if (op == RowOp::softmax || op == RowOp::log_softmax) {
        T m = -std::numeric_limits<T>::infinity();
        if (nv) {
            B mv(m);
            for (std::int64_t j = 0; j < nv; j += W) {
                const B v = B::load_unaligned(x + j) * sign;
                mv = xg::where(v > mv, v, mv);
            }
            alignas(64) T lanes[W];
            mv.store_aligned(lanes);
            for (std::int64_t l = 0; l < W; ++l) m = lanes[l] > m ? lanes[l] : m;
        }
        for (std::int64_t j = nv; j < len; ++j) m = x[j] * sign > m ? x[j] * sign : m;
        B sv(T(0));
        T s = 0;
        if (op == RowOp::softmax) {
            for (std::int64_t j = 0; j < nv; j += W) {
                const B e = xg::exp(B::load_unaligned(x + j) * sign - m);
                e.store_unaligned(out + j);
                sv = sv + e;
            }
            for (std::int64_t j = nv; j < len; ++j) s += out[j] = std::exp(x[j] * sign - m);
            s += xsimd::hadd(sv);
            const T r = T(1) / s;
            for (std::int64_t j = 0; j < nv; j += W) (B::load_unaligned(out + j) * r).store_unaligned(out + j);
            for (std::int64_t j = nv; j < len; ++j) out[j] *= r;
        } else {
            for (std::int64_t j = 0; j < nv; j += W) sv = sv + xg::exp(B::load_unaligned(x + j) * sign - m);
            for (std::int64_t j = nv; j < len; ++j) s += std::exp(x[j] * sign - m);
            s += xsimd::hadd(sv);
            const T ls = m + std::log(s);
            for (std::int64_t j = 0; j < nv; j += W) (B::load_unaligned(x + j) * sign - ls).store_unaligned(out + j);
            for (std::int64_t j = nv; j < len; ++j) out[j] = x[j] * sign - ls;
        }
    } else if (op == RowOp::softmax_backward) {
        B dv(T(0));
        T dot = 0;
        for (std::int64_t j = 0; j < nv; j += W) dv = dv + B::load_unaligned(g + j) * B::load_unaligned(x + j);
        for (std::int64_t j = nv; j < len; ++j) dot += g[j] * x[j];
        dot += xsimd::hadd(dv);
        for (std::int64_t j = 0; j < nv; j += W)
            (B::load_unaligned(x + j) * (B::load_unaligned(g + j) - dot) * sign).store_unaligned(out + j);
        for (std::int64_t j = nv; j < len; ++j) out[j] = x[j] * (g[j] - dot) * sign;
    } else {
        B sv(T(0));
        T s = 0;
        for (std::int64_t j = 0; j < nv; j += W) sv = sv + B::load_unaligned(g + j);
        for (std::int64_t j = nv; j < len; ++j) s += g[j];
        s += xsimd::hadd(sv);
        for (std::int64_t j = 0; j < nv; j += W)
            (B::load_unaligned(g + j) - xg::exp(B::load_unaligned(x + j)) * s).store_unaligned(out + j);
        for (std::int64_t j = nv; j < len; ++j) out[j] = g[j] - std::exp(x[j]) * s;
    }
}

// Runs op over every row along the split axis. Each row is done by one thread in a fixed order, so
// results do not depend on the thread count.
Array run_rows(RowOp op, double sign, const Array& x, const Array* g, const AxisSplit& sp, const char* name) {
    Array out(x.shape(), x.dtype());
    detail::dispatch_floating(x.dtype(), name, [&]<class T>() {
        using B = xsimd::batch<T>;
        constexpr std::int64_t W = B::size;
        const T* px = x.data<T>();
        const T* pg = g ? g->data<T>() : nullptr;
        T* po = out.data<T>();
        const T sg = static_cast<T>(sign);
        const std::int64_t row = sp.len * sp.inner;
        if (sp.inner == 1) {
            const std::int64_t grain =
                std::max<std::int64_t>(1, kGrainTranscendental / std::max<std::int64_t>(sp.len, 1));
            detail::parallel_for(sp.outer, grain, [&](std::int64_t b, std::int64_t e) {
                for (std::int64_t o = b; o < e; ++o)
                    contiguous_row_op<T>(op, sg, px + o * row, pg ? pg + o * row : nullptr, po + o * row, sp.len);
            });
        } else {
            // Rows adjacent along the inner dimension are processed W at a time.
            const std::int64_t blocks = (sp.inner + W - 1) / W;
            const std::int64_t grain =
                std::max<std::int64_t>(1, kGrainTranscendental / std::max<std::int64_t>(sp.len * W, 1));
            detail::parallel_for(sp.outer * blocks, grain, [&](std::int64_t b, std::int64_t e) {
                for (std::int64_t t = b; t < e; ++t) {
                    const std::int64_t o = t / blocks, i0 = (t % blocks) * W;
                    const std::int64_t off = o * row + i0;
                    if (i0 + W <= sp.inner) {
                        row_op<B, T>(op, sg, px + off, pg ? pg + off : nullptr, po + off, sp.len, sp.inner);
                    } else {
                        for (std::int64_t i = i0; i < sp.inner; ++i)
                            row_op<T, T>(op, sg, px + o * row + i, pg ? pg + o * row + i : nullptr, po + o * row + i,
                                         sp.len, sp.inner);
                    }
                }
            });
        }
    });
    return out;
}

Tensor softmax_backward_impl(const Tensor& g, const Tensor& y, std::int64_t axis, double sign, const char* name);

// Rule of softmax_backward (out = sign y (g - <g, y>) per row):
//   d/dg = softmax_backward(gg, y),  d/dy = sign (gg (g - <g, y>) - g <gg, y>).
Grads softmax_double_backward(const Tensor& gg, const Tensor& g, const Tensor& y, int axis, double sign,
                              const char* name, bool need_g, bool need_y) {
    Tensor dg, dy;
    if (need_g) dg = softmax_backward_impl(gg, y, axis, sign, name);
    if (need_y) {
        const Tensor d = sum(g * y, {axis}, true), e = sum(gg * y, {axis}, true);
        dy = (gg * (g - d) - g * e) * sign;
    }
    return {dg, dy};
}

Tensor softmax_backward_impl(const Tensor& g, const Tensor& y, std::int64_t axis_in, double sign, const char* name) {
    detail::require_defined(g, name, "the gradient");
    detail::require_defined(y, name, "the output");
    detail::require_same_shape(g, y, name);
    const Dtype d = promote(g.dtype(), y.dtype());
    const Array ga = g.array().to(d), ya = y.array().to(d);
    const AxisSplit sp = split_at(y.shape().empty() ? Shape{1} : y.shape(), y.ndim() == 0 ? 0 : axis_in, name);
    Array r = run_rows(RowOp::softmax_backward, sign, ya, &ga, sp, name);
    if (!needs_record({g, y})) return Tensor(std::move(r));
    const bool need_g = g.requires_grad(), need_y = y.requires_grad();
    Saved sg(g, name), sy(y, name);
    const int axis = sp.axis;
    return make_result(name, std::move(r), {g, y},
                       [sg, sy, axis, sign, name, need_g, need_y](const Tensor& gg, const Tensor&) {
                           return softmax_double_backward(gg, sg.get(), sy.get(), axis, sign, name, need_g, need_y);
                       });
}

// softmax (sign 1) and softmin (sign -1).
Tensor softmax_impl(const Tensor& x, std::int64_t axis_in, double sign, const char* name, const char* backward_name) {
    detail::require_defined(x, name);
    detail::require_floating(x.dtype(), name);
    const AxisSplit sp = split_at(x.ndim() == 0 ? Shape{1} : x.shape(), x.ndim() == 0 ? 0 : axis_in, name);
    Array y = run_rows(RowOp::softmax, sign, x.array(), nullptr, sp, name);
    const int axis = x.ndim() == 0 ? 0 : sp.axis;
    return make_result(
        name, std::move(y), {x},
        [axis, sign, backward_name](const Tensor& g, const Tensor& out) {
            return Grads{softmax_backward_impl(g, out, axis, sign, backward_name)};
        },
        true);
}
}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis) { return softmax_impl(x, axis, 1.0, "softmax", "softmax_backward"); }
Tensor softmin(const Tensor& x, std::int64_t axis) {
    return softmax_impl(x, axis, -1.0, "softmin", "softmin_backward");
}
Tensor softmax_backward(const Tensor& g, const Tensor& y, std::int64_t axis) {
    return softmax_backward_impl(g, y, axis, 1.0, "softmax_backward");
}

Tensor log_softmax_backward(const Tensor& g, const Tensor& y, std::int64_t axis_in) {
    const char* name = "log_softmax_backward";
    detail::require_defined(g, name, "the gradient");
    detail::require_defined(y, name, "the output");
    detail::require_same_shape(g, y, name);
    const Dtype d = promote(g.dtype(), y.dtype());
    const Array ga = g.array().to(d), ya = y.array().to(d);
    const AxisSplit sp = split_at(y.ndim() == 0 ? Shape{1} : y.shape(), y.ndim() == 0 ? 0 : axis_in, name);
    Array r = run_rows(RowOp::log_softmax_backward, 1.0, ya, &ga, sp, name);
    if (!needs_record({g, y})) return Tensor(std::move(r));
    const bool need_g = g.requires_grad(), need_y = y.requires_grad();
    Saved sg(g, name), sy(y, name);
    const int axis = sp.axis;
    // out = g - e^y sum(g):  d/dg = gg - sum(gg e^y),  d/dy = -gg e^y sum(g).
    return make_result(name, std::move(r), {g, y}, [sg, sy, axis, need_g, need_y](const Tensor& gg, const Tensor&) {
        const Tensor ey = exp(sy.get());
        Tensor dg, dy;
        if (need_g) dg = gg - sum(gg * ey, {axis}, true);
        if (need_y) dy = -(gg * ey * sum(sg.get(), {axis}, true));
        return Grads{dg, dy};
    });
}

Tensor log_softmax(const Tensor& x, std::int64_t axis_in) {
    const char* name = "log_softmax";
    detail::require_defined(x, name);
    detail::require_floating(x.dtype(), name);
    const AxisSplit sp = split_at(x.ndim() == 0 ? Shape{1} : x.shape(), x.ndim() == 0 ? 0 : axis_in, name);
    Array y = run_rows(RowOp::log_softmax, 1.0, x.array(), nullptr, sp, name);
    const int axis = sp.axis;
    return make_result(
        name, std::move(y), {x},
        [axis](const Tensor& g, const Tensor& out) { return Grads{log_softmax_backward(g, out, axis)}; }, true);
}

}  // namespace xg

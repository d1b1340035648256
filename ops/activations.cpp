#include "activations.hpp"

#include <cmath>
#include <limits>
#include <numbers>

#include "../autograd/node.hpp"
#include "../engine/kernels.hpp"
#include "activation_registry.hpp"
#include "arithmetic.hpp"
#include "elementwise_activation.hpp"
#include "factories.hpp"
#include "fused_activation.hpp"
#include "math.hpp"
#include "reduction.hpp"
#include "scalar_math.hpp"
#include "shape_ops.hpp"

namespace xg {

namespace {
using Grads = std::vector<Tensor>;
using detail::kGrainCheap;
using detail::kGrainTranscendental;
using detail::Saves;

// A definition whose higher-order derivatives differentiate the hand-written first derivative d0.
template <Saves S, class F, class D0>
auto def_of(std::string name, F f, D0 d0, bool linear_pieces = false, std::int64_t grain = kGrainTranscendental) {
    return detail::make_def<S>(std::move(name), f, d0, d0, linear_pieces, grain);
}

// SELU's constants (PyTorch's).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

// --- definitions: f (generic, also the reference for the automatic derivative) and f' -------------
// NOTE: each f is written so that the branch xg::where picks at a kink carries PyTorch's
// convention; the automatic derivative (duals of f) then agrees with the hand-written one there.

const auto& sigmoid_def() {
    static const auto d = def_of<Saves::output>(
        "sigmoid", [](auto x) { return xg::sigmoid(x); }, [](auto y) { return y * (1 - y); });
    return d;
}
const auto& tanh_def() {
    static const auto d = def_of<Saves::output>(
        "tanh", [](auto x) { return xg::tanh(x); }, [](auto y) { return 1 - y * y; });
    return d;
}
const auto& relu_def() {
    // NOTE: relu'(0) = 0: the mask is y > 0, and y == 0 at x == 0. relu(NaN) = NaN.
    static const auto d = def_of<Saves::output>(
        "relu", [](auto x) { return xg::where(x <= 0, 0, x); }, [](auto y) { return xg::where(y > 0, 1, 0); }, true,
        kGrainCheap);
    return d;
}
auto hardtanh_def(const std::string& name, double lo, double hi) {
    return def_of<Saves::input>(
        name, [lo, hi](auto x) { return xg::where(x <= lo, lo, xg::where(x >= hi, hi, x)); },
        [lo, hi](auto x) { return xg::where(x <= lo, 0, xg::where(x >= hi, 0, 1)); }, true, kGrainCheap);
}
auto leaky_relu_def(const std::string& name, double slope) {
    return def_of<Saves::input>(
        name, [slope](auto x) { return xg::where(x > 0, x, x * slope); },
        [slope](auto x) { return xg::where(x > 0, 1.0, slope); }, true, kGrainCheap);
}
// x > 0 ? x : a x with a per-element parameter (prelu's weight, rrelu's drawn slopes).
auto prelu_like_def(const char* name) {
    return detail::make_param_def(
        name, [](auto x, auto a) { return xg::where(x > 0, x, a * x); }, kGrainCheap);
}
const auto& prelu_def() {
    static const auto d = prelu_like_def("prelu");
    return d;
}
const auto& rrelu_train_def() {
    static const auto d = prelu_like_def("rrelu");
    return d;
}
auto elu_output_def(const std::string& name, double alpha, double scale) {
    // For alpha >= 0, y <= 0 exactly where x <= 0, so f' = y + scale * alpha there (PyTorch's is_result form).
    return def_of<Saves::output>(
        name, [alpha, scale](auto x) { return xg::where(x > 0, x, alpha * xg::expm1(x)) * scale; },
        [alpha, scale](auto y) { return xg::where(y > 0, scale, y + scale * alpha); });
}
auto elu_input_def(const std::string& name, double alpha) {
    return def_of<Saves::input>(
        name, [alpha](auto x) { return xg::where(x > 0, x, alpha * xg::expm1(x)); },
        [alpha](auto x) { return xg::where(x > 0, 1.0, alpha * xg::exp(x)); });
}
auto celu_def(double alpha) {
    return def_of<Saves::output>(
        "celu", [alpha](auto x) { return xg::where(x > 0, x, alpha * xg::expm1(x / alpha)); },
        [alpha](auto y) { return xg::where(y > 0, 1.0, y / alpha + 1); });
}
const auto& gelu_def() {
    // x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps full precision in the left tail.
    static const auto d = def_of<Saves::input>(
        "gelu", [](auto x) { return x * (xg::erfc(x * -std::numbers::sqrt2 / 2) * 0.5); },
        [](auto x) {
            constexpr double inv_sqrt_2pi = std::numbers::inv_sqrtpi / std::numbers::sqrt2;
            return xg::erfc(x * -std::numbers::sqrt2 / 2) * 0.5 + x * xg::exp(x * x * -0.5) * inv_sqrt_2pi;
        });
    return d;
}
constexpr double kGeluTanhK = 2 * std::numbers::sqrt2 * std::numbers::inv_sqrtpi;  // 2 sqrt(2/pi)
constexpr double kGeluTanhC = 0.044715;
const auto& gelu_tanh_def() {
    // 1/2 (1 + tanh(u)) = sigmoid(2u): no cancellation in the left tail.
    constexpr double k = kGeluTanhK, c = kGeluTanhC;
    static const auto d = def_of<Saves::input>(
        "gelu_tanh", [k, c](auto x) { return x * xg::sigmoid((x + x * x * x * c) * k); },
        [k, c](auto x) {
            const auto s = xg::sigmoid((x + x * x * x * c) * k);
            const auto d1 = s + x * (s * (1 - s)) * ((x * x * (3 * c) + 1) * k);
            // Far out the exact value is 0 or 1; guard x^2 overflowing to inf (0 * inf).
            return xg::where(xg::abs(x) < 1e6, d1, xg::where(x > 0, 1.0, 0.0));
        });
    return d;
}
auto swish_def(const std::string& name, double beta) {
    return def_of<Saves::input>(
        name, [beta](auto x) { return x * xg::sigmoid(x * beta); },
        [beta](auto x) {
            const auto s = xg::sigmoid(x * beta);
            return s * (1 + x * beta * (1 - s));
        });
}
const auto& silu_def() {
    static const auto d = def_of<Saves::input>(
        "silu", [](auto x) { return x * xg::sigmoid(x); },
        [](auto x) {
            const auto s = xg::sigmoid(x);
            return s * (1 + x * (1 - s));
        });
    return d;
}
const auto& swish_param_def() {
    static const auto d = detail::make_param_def("swish", [](auto x, auto beta) { return x * xg::sigmoid(beta * x); });
    return d;
}
const auto& mish_def() {
    // tanh(softplus(x)) = n / (n + 2) with n = e^x (e^x + 2); it is 1 in float64 beyond x = 20.
    static const auto d = def_of<Saves::input>(
        "mish",
        [](auto x) {
            const auto e = xg::exp(x);
            const auto n = e * (e + 2);
            return x * xg::where(x > 20, 1.0, n / (n + 2));
        },
        [](auto x) {
            const auto e = xg::exp(x);
            const auto n = e * (e + 2);
            const auto t = n / (n + 2);
            const auto one_minus_t = 2 / (n + 2);
            const auto s = e / (e + 1);
            // d = t + x s (1 - t^2), with 1 - t^2 = (1 - t)(1 + t) computed without cancellation.
            return xg::where(x > 20, 1.0, t + x * s * one_minus_t * (1 + t));
        });
    return d;
}
auto softplus_def(double beta, double threshold) {
    return def_of<Saves::input>(
        "softplus",
        [beta, threshold](auto x) { return xg::where(x * beta > threshold, x, xg::softplus(x * beta) / beta); },
        [beta, threshold](auto x) { return xg::where(x * beta > threshold, 1.0, xg::sigmoid(x * beta)); });
}
const auto& softsign_def() {
    static const auto d = def_of<Saves::input>(
        "softsign", [](auto x) { return x / (1 + xg::abs(x)); },
        [](auto x) {
            const auto a = 1 + xg::abs(x);
            return 1 / (a * a);
        });
    return d;
}
const auto& hardsigmoid_def() {
    static const auto d = def_of<Saves::input>(
        "hardsigmoid", [](auto x) { return xg::where(x <= -3, 0, xg::where(x >= 3, 1, x / 6 + 0.5)); },
        [](auto x) { return xg::where(x <= -3, 0.0, xg::where(x >= 3, 0.0, 1.0 / 6.0)); }, true, kGrainCheap);
    return d;
}
const auto& hardswish_def() {
    static const auto d = def_of<Saves::input>(
        "hardswish", [](auto x) { return xg::where(x < -3, 0, xg::where(x > 3, x, x * (x + 3) / 6)); },
        [](auto x) {
            const auto m = x / 3 + 0.5;
            // PyTorch: -0.5 at -3 and 1.5 at 3, with zero second derivative at the bounds.
            return xg::where(x < -3, 0, xg::where(x > 3, 1, xg::where(xg::abs(x) < 3, m, xg::stop_gradient(m))));
        },
        false, kGrainCheap);
    return d;
}
const auto& log_sigmoid_def() {
    static const auto d = def_of<Saves::input>(
        "log_sigmoid", [](auto x) { return -xg::softplus(-x); }, [](auto x) { return xg::sigmoid(-x); });
    return d;
}
const auto& tanhshrink_def() {
    static const auto d = def_of<Saves::input>(
        "tanhshrink", [](auto x) { return x - xg::tanh(x); },
        [](auto x) {
            const auto t = xg::tanh(x);
            return t * t;
        });
    return d;
}
auto softshrink_def(double l) {
    return def_of<Saves::input>(
        "softshrink", [l](auto x) { return xg::where(x > l, x - l, xg::where(x < -l, x + l, x * 0)); },
        [l](auto x) { return xg::where(x > l, 1, xg::where(x < -l, 1, 0)); }, true, kGrainCheap);
}
auto hardshrink_def(double l) {
    return def_of<Saves::input>(
        "hardshrink", [l](auto x) { return xg::where(xg::abs(x) <= l, 0, x); },
        [l](auto x) { return xg::where(xg::abs(x) <= l, 0, 1); }, true, kGrainCheap);
}
auto threshold_def(double th, double value) {
    return def_of<Saves::input>(
        "threshold", [th, value](auto x) { return xg::where(x <= th, value, x); },
        [th](auto x) { return xg::where(x <= th, 0, 1); }, true, kGrainCheap);
}
auto step_value(double t, double at) {
    return [t, at](auto x) { return xg::where(x > t, 1, xg::where(x < t, 0, xg::where(x == t, at, x))); };
}
Tensor step_impl(const std::string& name, const Tensor& x, const StepOptions& o) {
    const double t = o.threshold, k = o.slope;
    switch (o.surrogate) {
        case StepSurrogate::none:
            return detail::elementwise_forward(
                def_of<Saves::input>(
                    name, step_value(t, o.value_at_threshold), [](auto) { return 0; }, true, kGrainCheap),
                x);
        case StepSurrogate::straight_through:
            return detail::elementwise_forward(
                def_of<Saves::input>(
                    name, step_value(t, o.value_at_threshold), [](auto) { return 1; }, true, kGrainCheap),
                x);
        case StepSurrogate::sigmoid:
            return detail::elementwise_forward(def_of<Saves::input>(name, step_value(t, o.value_at_threshold),
                                                                    [t, k](auto x) {
                                                                        const auto s = xg::sigmoid((x - t) * k);
                                                                        return s * (1 - s) * k;
                                                                    }),
                                               x);
    }
    throw ValueError(name + ": unknown surrogate");
}

// An elementwise built-in's registry entry: its function and the automatic derivative of its f.
template <class Def>
ActivationInfo entry(std::shared_ptr<const Def> def, ActivationFn fn, std::string notes) {
    ActivationInfo info;
    info.fn = std::move(fn);
    info.elementwise = true;
    info.hand_written = true;
    info.automatic_derivative = [def](const Tensor& x, int order) {
        return detail::automatic_derivative(def->f, x, order, def->name);
    };
    info.notes = std::move(notes);
    return info;
}
}  // namespace

// --- elementwise built-ins ----------------------------------------------------------------------
Tensor sigmoid(const Tensor& x) { return detail::elementwise_forward(sigmoid_def(), x); }
Tensor sigmoid_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(sigmoid_def(), g, y); }
Tensor tanh(const Tensor& x) { return detail::elementwise_forward(tanh_def(), x); }
Tensor tanh_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(tanh_def(), g, y); }
Tensor relu(const Tensor& x) { return detail::elementwise_forward(relu_def(), x); }
Tensor relu_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(relu_def(), g, y); }

Tensor relu6(const Tensor& x) { return detail::elementwise_forward(hardtanh_def("relu6", 0.0, 6.0), x); }

Tensor hardtanh(const Tensor& x, double min_val, double max_val) {
    if (!(min_val <= max_val))
        throw ValueError("hardtanh: min_val " + std::to_string(min_val) + " is greater than max_val " +
                         std::to_string(max_val));
    return detail::elementwise_forward(hardtanh_def("hardtanh", min_val, max_val), x);
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
    return detail::elementwise_forward(leaky_relu_def("leaky_relu", negative_slope), x);
}

Tensor prelu(const Tensor& x, const Tensor& weight) {
    detail::require_defined(x, "prelu");
    detail::require_defined(weight, "prelu", "the weight");
    Tensor w = weight;
    if (weight.numel() != 1) {
        if (x.ndim() < 2 || weight.ndim() != 1 || weight.numel() != x.size(1))
            throw ShapeError("prelu: weight of shape " + shape_str(weight.shape()) +
                             " must have 1 element or one per channel (dimension 1) of the input of shape " +
                             shape_str(x.shape()));
        Shape s(x.ndim() - 1, 1);
        s[0] = weight.numel();
        w = reshape(weight, s);
    }
    return detail::param_forward(prelu_def(), x, w);
}

Tensor rrelu(const Tensor& x, double lower, double upper, bool training) {
    if (!(lower <= upper))
        throw ValueError("rrelu: lower " + std::to_string(lower) + " is greater than upper " + std::to_string(upper));
    if (!training) return detail::elementwise_forward(leaky_relu_def("rrelu", (lower + upper) / 2), x);
    detail::require_defined(x, "rrelu");
    detail::require_floating(x.dtype(), "rrelu");
    // One slope per element (used where x <= 0), from the seeded generator; a constant of the graph.
    return detail::param_forward(rrelu_train_def(), x, uniform(x.shape(), lower, upper, x.dtype()));
}

Tensor elu(const Tensor& x, double alpha) {
    if (alpha >= 0) return detail::elementwise_forward(elu_output_def("elu", alpha, 1.0), x);
    return detail::elementwise_forward(elu_input_def("elu", alpha), x);
}

Tensor selu(const Tensor& x) {
    static const auto d = elu_output_def("selu", kSeluAlpha, kSeluScale);
    return detail::elementwise_forward(d, x);
}

Tensor celu(const Tensor& x, double alpha) {
    if (alpha == 0) throw ValueError("celu: alpha must not be 0");
    return detail::elementwise_forward(celu_def(alpha), x);
}

Tensor gelu(const Tensor& x, const std::string& approximate) {
    if (approximate == "none") return detail::elementwise_forward(gelu_def(), x);
    if (approximate == "tanh") return detail::elementwise_forward(gelu_tanh_def(), x);
    throw ValueError("gelu: approximate must be \"none\" or \"tanh\", got \"" + approximate + "\"");
}

Tensor silu(const Tensor& x) { return detail::elementwise_forward(silu_def(), x); }
Tensor swish(const Tensor& x, double beta) { return detail::elementwise_forward(swish_def("swish", beta), x); }
Tensor swish(const Tensor& x, const Tensor& beta) { return detail::param_forward(swish_param_def(), x, beta); }
Tensor mish(const Tensor& x) { return detail::elementwise_forward(mish_def(), x); }

Tensor softplus(const Tensor& x, double beta, double threshold) {
    if (beta == 0) throw ValueError("softplus: beta must not be 0");
    return detail::elementwise_forward(softplus_def(beta, threshold), x);
}

Tensor softsign(const Tensor& x) { return detail::elementwise_forward(softsign_def(), x); }
Tensor hardsigmoid(const Tensor& x) { return detail::elementwise_forward(hardsigmoid_def(), x); }
Tensor hardswish(const Tensor& x) { return detail::elementwise_forward(hardswish_def(), x); }
Tensor log_sigmoid(const Tensor& x) { return detail::elementwise_forward(log_sigmoid_def(), x); }
Tensor tanhshrink(const Tensor& x) { return detail::elementwise_forward(tanhshrink_def(), x); }

Tensor softshrink(const Tensor& x, double lambd) {
    if (lambd < 0) throw ValueError("softshrink: lambd must be >= 0, got " + std::to_string(lambd));
    return detail::elementwise_forward(softshrink_def(lambd), x);
}

Tensor hardshrink(const Tensor& x, double lambd) {
    if (lambd < 0) throw ValueError("hardshrink: lambd must be >= 0, got " + std::to_string(lambd));
    return detail::elementwise_forward(hardshrink_def(lambd), x);
}

Tensor threshold(const Tensor& x, double th, double value) {
    return detail::elementwise_forward(threshold_def(th, value), x);
}

Tensor step(const Tensor& x, const StepOptions& options) { return step_impl("step", x, options); }

Tensor heaviside(const Tensor& x, double value) {
    StepOptions o;
    o.value_at_threshold = value;
    return step_impl("heaviside", x, o);
}

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

// --- the registry's built-in entries ------------------------------------------------------------------
std::vector<std::pair<std::string, ActivationInfo>> detail::builtin_activations() {
    std::vector<std::pair<std::string, ActivationInfo>> r;
    auto add = [&r](const std::string& name, ActivationInfo info) { r.emplace_back(name, std::move(info)); };
    auto structural = [](ActivationFn fn, std::string notes) {
        ActivationInfo info;
        info.fn = std::move(fn);
        info.notes = std::move(notes);
        return info;
    };
    add("sigmoid", entry(
                       sigmoid_def(), [](const Tensor& x) { return sigmoid(x); }, "d = y (1 - y) from the output"));
    add("tanh", entry(
                    tanh_def(), [](const Tensor& x) { return tanh(x); }, "d = 1 - y^2 from the output"));
    add("relu", entry(
                    relu_def(), [](const Tensor& x) { return relu(x); }, "relu'(0) = 0"));
    add("relu6", entry(
                     hardtanh_def("relu6", 0, 6), [](const Tensor& x) { return relu6(x); },
                     "d = 0 at 0 and at 6 (bounds included, as PyTorch)"));
    add("hardtanh", entry(
                        hardtanh_def("hardtanh", -1, 1), [](const Tensor& x) { return hardtanh(x); },
                        "min -1, max 1; d = 0 at the bounds"));
    add("leaky_relu", entry(
                          leaky_relu_def("leaky_relu", 0.01), [](const Tensor& x) { return leaky_relu(x); },
                          "negative_slope 0.01; d(0) = 0.01"));
    {
        // prelu with PyTorch's initial weight 0.25 (a layer owns the learnable weight).
        auto def = leaky_relu_def("prelu", 0.25);
        add("prelu", entry(
                         def, [](const Tensor& x) { return prelu(x, full({}, 0.25, x.dtype())); },
                         "weight fixed at 0.25 here (PyTorch's initial value); d(0) = weight"));
    }
    add("rrelu", entry(
                     leaky_relu_def("rrelu", (1.0 / 8 + 1.0 / 3) / 2), [](const Tensor& x) { return rrelu(x); },
                     "eval mode: slope (1/8 + 1/3) / 2"));
    add("elu", entry(
                   elu_output_def("elu", 1, 1), [](const Tensor& x) { return elu(x); }, "alpha 1; elu'(0) = alpha"));
    add("selu", entry(
                    elu_output_def("selu", kSeluAlpha, kSeluScale), [](const Tensor& x) { return selu(x); },
                    "selu'(0) = scale * alpha"));
    add("celu", entry(
                    celu_def(1), [](const Tensor& x) { return celu(x); }, "alpha 1; celu'(0) = 1"));
    add("gelu", entry(
                    gelu_def(), [](const Tensor& x) { return gelu(x); }, "exact erf form"));
    add("gelu_tanh", entry(
                         gelu_tanh_def(), [](const Tensor& x) { return gelu(x, "tanh"); }, "tanh approximation"));
    add("silu", entry(
                    silu_def(), [](const Tensor& x) { return silu(x); }, "x sigmoid(x)"));
    add("swish", entry(
                     swish_def("swish", 1.0), [](const Tensor& x) { return swish(x); }, "beta 1 (= silu)"));
    add("mish", entry(
                    mish_def(), [](const Tensor& x) { return mish(x); }, "x tanh(softplus(x))"));
    add("softplus", entry(
                        softplus_def(1, 20), [](const Tensor& x) { return softplus(x); },
                        "beta 1, threshold 20: identity where x * beta > 20"));
    add("softsign", entry(
                        softsign_def(), [](const Tensor& x) { return softsign(x); }, "softsign''(0) = 0"));
    add("hardsigmoid", entry(
                           hardsigmoid_def(), [](const Tensor& x) { return hardsigmoid(x); }, "d(+-3) = 0"));
    add("hardswish", entry(
                         hardswish_def(), [](const Tensor& x) { return hardswish(x); },
                         "d(-3) = -0.5, d(3) = 1.5 (PyTorch's convention)"));
    add("log_sigmoid", entry(
                           log_sigmoid_def(), [](const Tensor& x) { return log_sigmoid(x); }, "d = sigmoid(-x)"));
    add("tanhshrink", entry(
                          tanhshrink_def(), [](const Tensor& x) { return tanhshrink(x); }, "d = tanh(x)^2"));
    add("softshrink",
        entry(
            softshrink_def(0.5), [](const Tensor& x) { return softshrink(x); }, "lambda 0.5; d(+-0.5) = 0"));
    add("hardshrink", entry(
                          hardshrink_def(0.5), [](const Tensor& x) { return hardshrink(x); },
                          "lambda 0.5; jumps at +-0.5; d(+-0.5) = 0"));
    add("threshold", entry(
                         threshold_def(0.0, 0.0), [](const Tensor& x) { return threshold(x, 0.0, 0.0); },
                         "threshold 0, value 0; d(0) = 0"));
    add("step",
        entry(
            def_of<Saves::input>(
                "step", step_value(0.0, 1.0), [](auto) { return 0; }, true),
            [](const Tensor& x) { return step(x); }, "1 for x >= 0; zero gradient (see StepOptions for surrogates)"));
    {
        auto def = def_of<Saves::input>("step_sigmoid", step_value(0.0, 1.0), [](auto x) {
            const auto s = xg::sigmoid(x * 5.0);
            return s * (1 - s) * 5.0;
        });
        ActivationInfo info = entry(
            def,
            [](const Tensor& x) {
                StepOptions o;
                o.surrogate = StepSurrogate::sigmoid;
                o.slope = 5.0;
                return step(x, o);
            },
            "step with the surrogate gradient of a sigmoid of slope 5 (it differs from the "
            "true derivative 0 on purpose)");
        add("step_sigmoid", std::move(info));
    }
    add("heaviside", entry(
                         def_of<Saves::input>(
                             "heaviside", step_value(0.0, 0.5), [](auto) { return 0; }, true),
                         [](const Tensor& x) { return heaviside(x); }, "value 0.5 at 0; zero gradient"));
    add("glu", structural([](const Tensor& x) { return glu(x); }, "along the last axis (size must be even)"));
    add("softmax", structural([](const Tensor& x) { return softmax(x); }, "along the last axis"));
    add("log_softmax", structural([](const Tensor& x) { return log_softmax(x); }, "along the last axis"));
    add("softmin", structural([](const Tensor& x) { return softmin(x); }, "along the last axis"));
    return r;
}

// --- in-pass kernels for producers that fuse an activation (ops/fused_activation.hpp) -------------
namespace {
// Get returns the activation's definition; the kernels run its f and d0 exactly as its own ops do.
template <auto Get>
struct FusedKernels {
    template <class T>
    static void forward(const T* z, T* y, std::int64_t n) {
        detail::simd_run<false, T, 1>(
            std::array<const T*, 1>{z}, std::array<bool, 1>{false}, false, y, 0, n,
            [&f = Get()->f](auto v) { return f(v); }, std::make_index_sequence<1>{});
    }
    template <class T>
    static void backward(const T* g, const T* u, T* out, std::int64_t n) {
        const auto& def = Get();
        detail::simd_run<false, T, 2>(
            std::array<const T*, 2>{g, u}, std::array<bool, 2>{false, false}, false, out, 0, n,
            [&def](auto hb, auto ub) { return hb * detail::as_batch<decltype(hb)>(def->d0(ub)); },
            std::make_index_sequence<2>{});
    }
    static Tensor op(const Tensor& g, const Tensor& u) { return detail::chain_op<0>(Get(), g, u); }
    static detail::FusedActivation make(const char* name) {
        using D = std::remove_cvref_t<decltype(*Get())>;
        return {name, D::saves == Saves::output, &forward<float>, &forward<double>, &backward<float>, &backward<double>,
                &op};
    }
};
}  // namespace

const detail::FusedActivation* detail::fused_activation(const std::string& name) {
    static const FusedActivation table[] = {
        FusedKernels<relu_def>::make("relu"),           FusedKernels<sigmoid_def>::make("sigmoid"),
        FusedKernels<tanh_def>::make("tanh"),           FusedKernels<gelu_def>::make("gelu"),
        FusedKernels<gelu_tanh_def>::make("gelu_tanh"), FusedKernels<silu_def>::make("silu")};
    for (const auto& f : table)
        if (name == f.name) return &f;
    return nullptr;
}

}  // namespace xg

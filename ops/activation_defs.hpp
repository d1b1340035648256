// ops/: internal: the definitions of the built-in elementwise activations (f, the first derivative
// used by backward, kink conventions), shared by the files that compile their ops, their registry
// entries and their fused in-pass kernels (split so that the template-heavy instantiations compile
// in parallel). Not installed for users: include ops/activations.hpp instead.
#pragma once
#include <cmath>
#include <limits>
#include <numbers>

#include "../autograd/node.hpp"
#include "../engine/kernels.hpp"
#include "activation_registry.hpp"
#include "activations.hpp"
#include "arithmetic.hpp"
#include "elementwise_activation.hpp"
#include "factories.hpp"
#include "fused_activation.hpp"
#include "math.hpp"
#include "reduction.hpp"
#include "scalar_math.hpp"
#include "shape_ops.hpp"

namespace xg::activation_defs {
using Grads = std::vector<Tensor>;
using detail::kGrainCheap;
using detail::kGrainTranscendental;
using detail::Saves;

// A definition whose higher-order derivatives differentiate the hand-written first derivative d0.
template <Saves S, class F, class D0>
inline auto def_of(std::string name, F f, D0 d0, bool linear_pieces = false,
                   std::int64_t grain = kGrainTranscendental) {
    return detail::make_def<S>(std::move(name), f, d0, d0, linear_pieces, grain);
}

// SELU's constants (PyTorch's).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

// --- definitions: f (generic, also the reference for the automatic derivative) and f' -------------
// NOTE: each f is written so that the branch xg::where picks at a kink carries PyTorch's
// convention; the automatic derivative (duals of f) then agrees with the hand-written one there.

inline const auto& sigmoid_def() {
    static const auto d = def_of<Saves::output>(
        "sigmoid", [](auto x) { return xg::sigmoid(x); }, [](auto y) { return y * (1 - y); });
    return d;
}
inline const auto& tanh_def() {
    static const auto d = def_of<Saves::output>(
        "tanh", [](auto x) { return xg::tanh(x); }, [](auto y) { return 1 - y * y; });
    return d;
}
inline const auto& relu_def() {
    // NOTE: relu'(0) = 0: the mask is y > 0, and y == 0 at x == 0. relu(NaN) = NaN.
    static const auto d = def_of<Saves::output>(
        "relu", [](auto x) { return xg::where(x <= 0, 0, x); }, [](auto y) { return xg::where(y > 0, 1, 0); }, true,
        kGrainCheap);
    return d;
}
inline auto hardtanh_def(const std::string& name, double lo, double hi) {
    return def_of<Saves::input>(
        name, [lo, hi](auto x) { return xg::where(x <= lo, lo, xg::where(x >= hi, hi, x)); },
        [lo, hi](auto x) { return xg::where(x <= lo, 0, xg::where(x >= hi, 0, 1)); }, true, kGrainCheap);
}
inline auto leaky_relu_def(const std::string& name, double slope) {
    return def_of<Saves::input>(
        name, [slope](auto x) { return xg::where(x > 0, x, x * slope); },
        [slope](auto x) { return xg::where(x > 0, 1.0, slope); }, true, kGrainCheap);
}
// x > 0 ? x : a x with a per-element parameter (prelu's weight, rrelu's drawn slopes).
inline auto prelu_like_def(const char* name) {
    return detail::make_param_def(
        name, [](auto x, auto a) { return xg::where(x > 0, x, a * x); }, kGrainCheap);
}
inline const auto& prelu_def() {
    static const auto d = prelu_like_def("prelu");
    return d;
}
inline const auto& rrelu_train_def() {
    static const auto d = prelu_like_def("rrelu");
    return d;
}
inline auto elu_output_def(const std::string& name, double alpha, double scale) {
    // For alpha >= 0, y <= 0 exactly where x <= 0, so f' = y + scale * alpha there (PyTorch's is_result form).
    return def_of<Saves::output>(
        name, [alpha, scale](auto x) { return xg::where(x > 0, x, alpha * xg::expm1(x)) * scale; },
        [alpha, scale](auto y) { return xg::where(y > 0, scale, y + scale * alpha); });
}
inline auto elu_input_def(const std::string& name, double alpha) {
    return def_of<Saves::input>(
        name, [alpha](auto x) { return xg::where(x > 0, x, alpha * xg::expm1(x)); },
        [alpha](auto x) { return xg::where(x > 0, 1.0, alpha * xg::exp(x)); });
}
inline auto celu_def(double alpha) {
    return def_of<Saves::output>(
        "celu", [alpha](auto x) { return xg::where(x > 0, x, alpha * xg::expm1(x / alpha)); },
        [alpha](auto y) { return xg::where(y > 0, 1.0, y / alpha + 1); });
}
#if defined(__AVX512F__)
/// The normal tail q = Phi(-|x|) = erfc(|x| / sqrt 2) / 2 and e = e^(-x^2 / 2), for gelu's float
/// kernels (both from one exp, see detail::erfc_parts_avx512), with x^2 / 2 split from x itself so
/// that the tail keeps full precision. Over [-14, 14]: gelu within 3.3 ulp, gelu' within 2.6 ulp
/// of Phi + |x phi| (xsimd::erfc and exp gave 114 and 32 ulp), 1.3-1.6x faster.
struct NormalTail {
    __m512 q, e;
};
inline NormalTail normal_tail_avx512(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(1e5f), _mm512_max_ps(_mm512_set1_ps(-1e5f), x));  // x^2 finite; NaN stays
    const __m512 t = _mm512_div_ps(
        _mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.35355339059327373f),  // 1/(2 sqrt 2)
                                              _mm512_set1_ps(1.0f)));
    const __m512 hi = _mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(0.5f));
    const __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(x, x, _mm512_add_ps(hi, hi)), _mm512_set1_ps(0.5f));
    const detail::ErfcParts parts = detail::erfc_parts_avx512(t, hi, lo);
    return {_mm512_mul_ps(parts.erfc, _mm512_set1_ps(0.5f)), parts.e};
}
/// Phi(x) from the tail q = Phi(-|x|).
inline __m512 normal_cdf_from_tail(__m512 x, __m512 q) {
    return _mm512_mask_sub_ps(q, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ), _mm512_set1_ps(1.0f), q);
}
#endif

inline const auto& gelu_def() {
    // x Phi(x) with Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps full precision in the left tail.
    static const auto d = def_of<Saves::derivative>(
        "gelu",
        [](auto x) {
#if defined(__AVX512F__)
            if constexpr (detail::is_f32x16<decltype(x)>) {
                const NormalTail tail = normal_tail_avx512(x);
                return decltype(x)(_mm512_mul_ps(x, normal_cdf_from_tail(x, tail.q)));
            }
#endif
            return x * (xg::erfc(x * -std::numbers::sqrt2 / 2) * 0.5);
        },
        [](auto x) {
            constexpr double inv_sqrt_2pi = std::numbers::inv_sqrtpi / std::numbers::sqrt2;
#if defined(__AVX512F__)
            if constexpr (detail::is_f32x16<decltype(x)>) {
                const NormalTail tail = normal_tail_avx512(x);
                return decltype(x)(_mm512_fmadd_ps(_mm512_mul_ps(x, tail.e), _mm512_set1_ps(float(inv_sqrt_2pi)),
                                                   normal_cdf_from_tail(x, tail.q)));
            }
#endif
            return xg::erfc(x * -std::numbers::sqrt2 / 2) * 0.5 + x * xg::exp(x * x * -0.5) * inv_sqrt_2pi;
        });
    return d;
}
constexpr double kGeluTanhK = 2 * std::numbers::sqrt2 * std::numbers::inv_sqrtpi;  // 2 sqrt(2/pi)
constexpr double kGeluTanhC = 0.044715;
inline const auto& gelu_tanh_def() {
    // 1/2 (1 + tanh(u)) = sigmoid(2u): no cancellation in the left tail.
    constexpr double k = kGeluTanhK, c = kGeluTanhC;
    static const auto d = def_of<Saves::derivative>(
        "gelu_tanh", [k, c](auto x) { return x * xg::sigmoid((x + x * x * x * c) * k); },
        [k, c](auto x) {
            const auto s = xg::sigmoid((x + x * x * x * c) * k);
            const auto d1 = s + x * (s * (1 - s)) * ((x * x * (3 * c) + 1) * k);
            // Far out the exact value is 0 or 1; guard x^2 overflowing to inf (0 * inf).
            return xg::where(xg::abs(x) < 1e6, d1, xg::where(x > 0, 1.0, 0.0));
        });
    return d;
}
inline auto swish_def(const std::string& name, double beta) {
    return def_of<Saves::derivative>(
        name, [beta](auto x) { return x * xg::sigmoid(x * beta); },
        [beta](auto x) {
            const auto s = xg::sigmoid(x * beta);
            return s * (1 + x * beta * (1 - s));
        });
}
inline const auto& silu_def() {
    static const auto d = def_of<Saves::derivative>(
        "silu", [](auto x) { return x * xg::sigmoid(x); },
        [](auto x) {
            const auto s = xg::sigmoid(x);
            return s * (1 + x * (1 - s));
        });
    return d;
}
inline const auto& swish_param_def() {
    static const auto d = detail::make_param_def("swish", [](auto x, auto beta) { return x * xg::sigmoid(beta * x); });
    return d;
}
inline const auto& mish_def() {
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
inline auto softplus_def(double beta, double threshold) {
    return def_of<Saves::input>(
        "softplus",
        [beta, threshold](auto x) { return xg::where(x * beta > threshold, x, xg::softplus(x * beta) / beta); },
        [beta, threshold](auto x) { return xg::where(x * beta > threshold, 1.0, xg::sigmoid(x * beta)); });
}
// softplus_def(1, threshold) without the multiply and the divide by beta (exact for beta = 1, so the
// values are the same bits): the default softplus.
inline auto softplus_unit_def(double threshold) {
    return def_of<Saves::input>(
        "softplus", [threshold](auto x) { return xg::where(x > threshold, x, xg::softplus(x)); },
        [threshold](auto x) { return xg::where(x > threshold, 1.0, xg::sigmoid(x)); });
}
inline const auto& softsign_def() {
    static const auto d = def_of<Saves::input>(
        "softsign", [](auto x) { return x / (1 + xg::abs(x)); },
        [](auto x) {
            const auto a = 1 + xg::abs(x);
            return 1 / (a * a);
        });
    return d;
}
inline const auto& hardsigmoid_def() {
    static const auto d = def_of<Saves::input>(
        "hardsigmoid", [](auto x) { return xg::where(x <= -3, 0, xg::where(x >= 3, 1, x / 6 + 0.5)); },
        [](auto x) { return xg::where(x <= -3, 0.0, xg::where(x >= 3, 0.0, 1.0 / 6.0)); }, true, kGrainCheap);
    return d;
}
inline const auto& hardswish_def() {
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
inline const auto& log_sigmoid_def() {
    static const auto d = def_of<Saves::input>(
        "log_sigmoid", [](auto x) { return -xg::softplus(-x); }, [](auto x) { return xg::sigmoid(-x); });
    return d;
}
inline const auto& tanhshrink_def() {
    static const auto d = def_of<Saves::input>(
        "tanhshrink", [](auto x) { return x - xg::tanh(x); },
        [](auto x) {
            const auto t = xg::tanh(x);
            return t * t;
        });
    return d;
}
inline auto softshrink_def(double l) {
    return def_of<Saves::input>(
        "softshrink", [l](auto x) { return xg::where(x > l, x - l, xg::where(x < -l, x + l, x * 0)); },
        [l](auto x) { return xg::where(x > l, 1, xg::where(x < -l, 1, 0)); }, true, kGrainCheap);
}
inline auto hardshrink_def(double l) {
    return def_of<Saves::input>(
        "hardshrink", [l](auto x) { return xg::where(xg::abs(x) <= l, 0, x); },
        [l](auto x) { return xg::where(xg::abs(x) <= l, 0, 1); }, true, kGrainCheap);
}
inline auto threshold_def(double th, double value) {
    return def_of<Saves::input>(
        "threshold", [th, value](auto x) { return xg::where(x <= th, value, x); },
        [th](auto x) { return xg::where(x <= th, 0, 1); }, true, kGrainCheap);
}
inline auto step_value(double t, double at) {
    return [t, at](auto x) { return xg::where(x > t, 1, xg::where(x < t, 0, xg::where(x == t, at, x))); };
}
inline Tensor step_impl(const std::string& name, const Tensor& x, const StepOptions& o) {
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
inline ActivationInfo entry(std::shared_ptr<const Def> def, ActivationFn fn, std::string notes) {
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
}  // namespace xg::activation_defs

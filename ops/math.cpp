#include "math.hpp"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "../autograd/node.hpp"
#include "../engine/kernels.hpp"
#include "arithmetic.hpp"
#include "scalar_math.hpp"

namespace xg {

namespace {
using Grads = std::vector<Tensor>;

void check_defined(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": the input is undefined");
}

// Forward of a unary op whose kernel is written for xsimd batches.
template <class F>
Array forward(const Tensor& x, const char* op, F f) {
    check_defined(x, op);
    return detail::unary_simd(x.array(), op, f);
}

// Lanes outside xsimd's exact range go through <cmath> (see detail::simd_or_scalar).
template <class B>
B exp_full_range(const B& v) {
    using T = typename B::value_type;
    constexpr bool f32 = std::is_same_v<T, float>;
#if defined(__AVX512F__)
    if constexpr (f32 && sizeof(B) == sizeof(__m512)) return xg::exp(v);  // exact range already
#endif
    return detail::simd_or_scalar(
        v, f32 ? T(-87.0) : T(-708.0), f32 ? T(88.3) : T(709.0), [](const B& b) { return xsimd::exp(b); },
        [](T t) { return std::exp(t); });
}

template <class B>
B expm1_full_range(const B& v) {
    using T = typename B::value_type;
    constexpr bool f32 = std::is_same_v<T, float>;
    return detail::simd_or_scalar(
        v, std::numeric_limits<T>::lowest(), f32 ? T(88.3) : T(709.0), [](const B& b) { return xsimd::expm1(b); },
        [](T t) { return std::expm1(t); });
}

}  // namespace

Tensor exp(const Tensor& x) {
    return make_result(
        "exp", forward(x, "exp", [](auto v) { return exp_full_range(v); }), {x},
        [](const Tensor& g, const Tensor& y) { return Grads{g * y}; }, true);
}

Tensor log(const Tensor& x) {
    Array y = forward(x, "log", [](auto v) { return xsimd::log(v); });
    Saved sx(x, "log");
    return make_result("log", std::move(y), {x}, [sx](const Tensor& g, const Tensor&) { return Grads{g / sx.get()}; });
}

Tensor log1p(const Tensor& x) {
    Array y = forward(x, "log1p", [](auto v) { return xsimd::log1p(v); });
    Saved sx(x, "log1p");
    return make_result("log1p", std::move(y), {x},
                       [sx](const Tensor& g, const Tensor&) { return Grads{g / (sx.get() + 1.0)}; });
}

Tensor expm1(const Tensor& x) {
    Array y = forward(x, "expm1", [](auto v) { return expm1_full_range(v); });
    Saved sx(x, "expm1");
    // NOTE: d = e^x from the input, not y + 1 from the output (PyTorch): y + 1 cancels for x << 0.
    return make_result("expm1", std::move(y), {x},
                       [sx](const Tensor& g, const Tensor&) { return Grads{g * exp(sx.get())}; });
}

Tensor sqrt(const Tensor& x) {
    return make_result(
        "sqrt", forward(x, "sqrt", [](auto v) { return xsimd::sqrt(v); }), {x},
        [](const Tensor& g, const Tensor& y) { return Grads{g / (y * 2.0)}; }, true);
}

Tensor rsqrt(const Tensor& x) {
    using xsimd::sqrt;
    return make_result(
        "rsqrt", forward(x, "rsqrt", [](auto v) { return decltype(v)(1) / sqrt(v); }), {x},
        [](const Tensor& g, const Tensor& y) { return Grads{g * (y * y * y) * -0.5}; }, true);
}

Tensor abs(const Tensor& x) {
    check_defined(x, "abs");
    Array y(x.shape(), x.dtype());
    detail::dispatch(x.dtype(), "abs", [&]<class T>() {
        const T* p = x.array().data<T>();
        T* q = y.data<T>();
        detail::parallel_for(x.numel(), detail::scaled_grain<T>(detail::kGrainCheap),
                             [&](std::int64_t s, std::int64_t e) {
                                 for (std::int64_t i = s; i < e; ++i) q[i] = std::abs(p[i]);  // |-0.0| = +0.0
                             });
    });
    Saved sx(x, "abs");
    return make_result("abs", std::move(y), {x},
                       [sx](const Tensor& g, const Tensor&) { return Grads{g * sign(sx.get())}; });
}

Tensor sign(const Tensor& x) {
    check_defined(x, "sign");
    Array y(x.shape(), x.dtype());
    detail::dispatch(x.dtype(), "sign", [&]<class T>() {
        const T* p = x.array().data<T>();
        T* q = y.data<T>();
        detail::parallel_for(x.numel(), detail::scaled_grain<T>(detail::kGrainCheap),
                             [&](std::int64_t s, std::int64_t e) {
                                 for (std::int64_t i = s; i < e; ++i)
                                     q[i] = p[i] > 0 ? T(1) : (p[i] < 0 ? T(-1) : p[i]);  // keeps NaN
                             });
    });
    return make_result("sign", std::move(y), {x}, [](const Tensor& g, const Tensor&) { return Grads{g * 0.0}; });
}

Tensor square(const Tensor& x) {
    check_defined(x, "square");
    Array y(x.shape(), x.dtype());
    detail::dispatch(x.dtype(), "square", [&]<class T>() {
        const T* p = x.array().data<T>();
        T* q = y.data<T>();
        detail::parallel_for(x.numel(), detail::scaled_grain<T>(detail::kGrainCheap),
                             [&](std::int64_t s, std::int64_t e) {
                                 for (std::int64_t i = s; i < e; ++i) q[i] = p[i] * p[i];
                             });
    });
    if (!needs_record({x})) return Tensor(std::move(y));
    Saved sx(x, "square");
    return make_result("square", std::move(y), {x},
                       [sx](const Tensor& g, const Tensor&) { return Grads{g * (sx.get() * 2.0)}; });
}

Tensor reciprocal(const Tensor& x) {
    return make_result(
        "reciprocal", forward(x, "reciprocal", [](auto v) { return decltype(v)(1) / v; }), {x},
        [](const Tensor& g, const Tensor& y) { return Grads{-(g * (y * y))}; }, true);
}

Tensor sin(const Tensor& x) {
    Array y = forward(x, "sin", [](auto v) { return xsimd::sin(v); });
    Saved sx(x, "sin");
    return make_result("sin", std::move(y), {x},
                       [sx](const Tensor& g, const Tensor&) { return Grads{g * cos(sx.get())}; });
}

Tensor cos(const Tensor& x) {
    Array y = forward(x, "cos", [](auto v) { return xsimd::cos(v); });
    Saved sx(x, "cos");
    return make_result("cos", std::move(y), {x},
                       [sx](const Tensor& g, const Tensor&) { return Grads{-(g * sin(sx.get()))}; });
}

}  // namespace xg

// ops/: forward-mode dual numbers. A Dual<T> carries a value and its derivative along one seeded
// direction; arithmetic on it applies the chain rule. Dual<Dual<T>> carries second derivatives, and
// so on: the n-th derivative of a generic scalar function is n nested duals (by composition).
// T is float, double, an xsimd batch, or a Dual itself. Header-only, no xtensor.
#pragma once
// clang-format off
#include "../engine/x86_intrinsics.hpp"  // first: see there
// clang-format on
#include <cstddef>
#include <type_traits>
#include <xsimd/xsimd.hpp>

namespace xg {

template <class T>
struct Dual;

namespace detail {
template <class T>
struct is_dual : std::false_type {};
template <class T>
struct is_dual<Dual<T>> : std::true_type {};
template <class T>
struct is_batch : std::false_type {};
template <class T, class A>
struct is_batch<xsimd::batch<T, A>> : std::true_type {};

// The innermost non-dual type (float, double or a batch).
template <class T>
struct base_type {
    using type = T;
};
template <class T>
struct base_type<Dual<T>> : base_type<T> {};
// The element type of that innermost type (float or double; the type itself for other scalars).
template <class T>
struct element_type {
    using type = T;
};
template <class T, class A>
struct element_type<xsimd::batch<T, A>> {
    using type = T;
};
template <class T>
struct element_type<Dual<T>> : element_type<T> {};
template <class T>
inline constexpr int dual_depth = 0;
template <class T>
inline constexpr int dual_depth<Dual<T>> = 1 + dual_depth<T>;
}  // namespace detail

/// True for Dual<T> of any depth.
template <class T>
inline constexpr bool is_dual_v = detail::is_dual<std::remove_cvref_t<T>>::value;
/// True for xsimd batches.
template <class T>
inline constexpr bool is_batch_v = detail::is_batch<std::remove_cvref_t<T>>::value;
/// The innermost non-dual type of T (float, double or an xsimd batch).
template <class T>
using base_t = typename detail::base_type<std::remove_cvref_t<T>>::type;
/// float or double: the element type under batches and duals.
template <class T>
using element_t = typename detail::element_type<std::remove_cvref_t<T>>::type;
/// The comparison result for T: bool for scalars, a batch_bool for batches (duals compare values).
template <class T>
using mask_t = decltype(std::declval<base_t<T>>() < std::declval<base_t<T>>());

/// A type xg's scalar math accepts: float, double, an xsimd batch of them, or a Dual of those.
template <class T>
concept ScalarLike = std::is_floating_point_v<std::remove_cvref_t<T>> || is_batch_v<T> || is_dual_v<T>;

namespace detail {
/// The constant c as a T (a dual constant has zero derivative).
template <class T>
T constant(double c) {
    if constexpr (is_dual_v<T>)
        return T(constant<typename T::value_type>(c), constant<typename T::value_type>(0.0));
    else
        return T(static_cast<element_t<T>>(c));
}
/// s converted to T: arithmetic constants through the element type, everything else by T's constructor.
template <class T, class S>
T lift(const S& s) {
    if constexpr (std::is_same_v<std::remove_cvref_t<S>, T>)
        return s;
    else if constexpr (std::is_arithmetic_v<S>)
        return constant<T>(static_cast<double>(s));
    else
        return T(s);
}
}  // namespace detail

/// A forward-mode dual number v + d*eps with eps^2 = 0.
template <class T>
struct Dual {
    using value_type = T;
    T v;  ///< value
    T d;  ///< derivative along the seeded direction

    Dual() : v(detail::constant<T>(0.0)), d(detail::constant<T>(0.0)) {}
    Dual(const T& value, const T& deriv) : v(value), d(deriv) {}
    /// A constant (zero derivative) from anything T can be made of: 2.0, a batch, a shallower dual.
    template <class S>
    requires(!std::is_same_v<std::remove_cvref_t<S>, Dual> &&
             (std::is_arithmetic_v<S> || std::is_constructible_v<T, const S&>)) Dual(const S& c)
        : v(detail::lift<T>(c)), d(detail::constant<T>(0.0)) {}
};

namespace detail {
// S can be mixed with Dual<T> as a constant (an arithmetic value, T itself, a shallower dual or a batch).
template <class S, class T>
concept DualConstant = !std::is_same_v<std::remove_cvref_t<S>, Dual<T>> &&
                       (std::is_arithmetic_v<S> || std::is_constructible_v<T, const S&>);

/// The value part all the way down (float, double or a batch); non-duals are returned as they are.
template <class T>
decltype(auto) primal(const T& x) {
    if constexpr (is_dual_v<T>)
        return primal(x.v);
    else
        return (x);
}
/// x as a value of the base type B (arithmetic constants are broadcast; duals give their value).
template <class B, class T>
B to_base(const T& x) {
    if constexpr (is_dual_v<T>)
        return B(primal(x));
    else if constexpr (std::is_arithmetic_v<T>)
        return B(static_cast<element_t<B>>(x));
    else
        return B(x);
}
}  // namespace detail

// --- arithmetic --------------------------------------------------------------------------------
template <class T>
Dual<T> operator+(const Dual<T>& a) {
    return a;
}
template <class T>
Dual<T> operator-(const Dual<T>& a) {
    return {-a.v, -a.d};
}
template <class T>
Dual<T> operator+(const Dual<T>& a, const Dual<T>& b) {
    return {a.v + b.v, a.d + b.d};
}
template <class T>
Dual<T> operator-(const Dual<T>& a, const Dual<T>& b) {
    return {a.v - b.v, a.d - b.d};
}
template <class T>
Dual<T> operator*(const Dual<T>& a, const Dual<T>& b) {
    return {a.v * b.v, a.d * b.v + a.v * b.d};
}
template <class T>
Dual<T> operator/(const Dual<T>& a, const Dual<T>& b) {
    const T q = a.v / b.v;
    return {q, (a.d - q * b.d) / b.v};
}
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator+(const Dual<T>& a, const S& b) { return a + Dual<T>(b); }
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator+(const S& a, const Dual<T>& b) { return Dual<T>(a) + b; }
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator-(const Dual<T>& a, const S& b) { return a - Dual<T>(b); }
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator-(const S& a, const Dual<T>& b) { return Dual<T>(a) - b; }
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator*(const Dual<T>& a, const S& b) {
    const T c = detail::lift<T>(b);
    return {a.v * c, a.d * c};
}
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator*(const S& a, const Dual<T>& b) {
    const T c = detail::lift<T>(a);
    return {c * b.v, c * b.d};
}
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator/(const Dual<T>& a, const S& b) {
    const T c = detail::lift<T>(b);
    return {a.v / c, a.d / c};
}
template <class T, class S>
requires detail::DualConstant<S, T> Dual<T>
operator/(const S& a, const Dual<T>& b) { return Dual<T>(a) / b; }
template <class T, class S>
Dual<T>& operator+=(Dual<T>& a, const S& b) {
    return a = a + b;
}
template <class T, class S>
Dual<T>& operator-=(Dual<T>& a, const S& b) {
    return a = a - b;
}
template <class T, class S>
Dual<T>& operator*=(Dual<T>& a, const S& b) {
    return a = a * b;
}
template <class T, class S>
Dual<T>& operator/=(Dual<T>& a, const S& b) {
    return a = a / b;
}

// --- comparisons: on values only; the result is the base type's mask (bool or batch_bool) ---------
#define XG_DUAL_COMPARISON(op)                                                        \
    template <class A, class B>                                                       \
    requires(is_dual_v<A> || is_dual_v<B>) auto operator op(const A& a, const B& b) { \
        using Base = std::conditional_t<is_dual_v<A>, base_t<A>, base_t<B>>;          \
        return detail::to_base<Base>(a) op detail::to_base<Base>(b);                  \
    }
XG_DUAL_COMPARISON(<)
XG_DUAL_COMPARISON(<=)
XG_DUAL_COMPARISON(>)
XG_DUAL_COMPARISON(>=)
XG_DUAL_COMPARISON(==)
XG_DUAL_COMPARISON(!=)
#undef XG_DUAL_COMPARISON

// --- seeding and reading -----------------------------------------------------------------------
/// x as a dual with derivative 1 (the variable we differentiate by).
template <class T>
Dual<T> make_variable(const T& x) {
    return Dual<T>(x, detail::constant<T>(1.0));
}
/// The derivative part of r when r is a Dual<X>; 0 when r does not depend on the variable.
template <class X, class R>
X tangent(const R& r) {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, Dual<X>>)
        return r.d;
    else
        return detail::constant<X>(0.0);
}
/// The value part of r as an X (r may be a Dual<X>, an X, or a constant).
template <class X, class R>
X value_of(const R& r) {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, Dual<X>>)
        return r.v;
    else
        return detail::lift<X>(r);
}

/// f'(x) for a generic scalar function f, by one forward-mode dual pass: f(x + eps).d.
template <class F, class X>
X derivative(const F& f, const X& x) {
    return tangent<X>(f(make_variable(x)));
}
/// The K-th derivative of f at x by composing `derivative` K times (K nested duals).
template <int K, class F, class X>
X nth_derivative(const F& f, const X& x) {
    static_assert(K >= 0, "nth_derivative: K must be >= 0");
    if constexpr (K == 0)
        return value_of<X>(f(x));
    else
        return nth_derivative<K - 1>([&f](const auto& v) { return derivative(f, v); }, x);
}
/// d f(x, a) / dx for a generic function of two variables.
template <class F, class X>
X partial_x(const F& f, const X& x, const X& a) {
    return tangent<X>(f(make_variable(x), Dual<X>(a)));
}
/// d f(x, a) / da for a generic function of two variables.
template <class F, class X>
X partial_a(const F& f, const X& x, const X& a) {
    return tangent<X>(f(Dual<X>(x), make_variable(a)));
}
/// The mixed partial d^(I+J) f / dx^I da^J at (x, a), by nested duals.
template <int I, int J, class F, class X>
X mixed_partial(const F& f, const X& x, const X& a) {
    if constexpr (I > 0)
        return mixed_partial<I - 1, J>([&f](const auto& u, const auto& b) { return partial_x(f, u, b); }, x, a);
    else if constexpr (J > 0)
        return mixed_partial<0, J - 1>([&f](const auto& u, const auto& b) { return partial_a(f, u, b); }, x, a);
    else
        return value_of<X>(f(x, a));
}

}  // namespace xg

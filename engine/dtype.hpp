// Runtime element types of xgrad arrays.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace xg {

/// Element type of an array: 32/64-bit float (differentiable) or 64-bit integer (labels, indices).
enum class Dtype : std::uint8_t { f32, f64, i64 };

inline constexpr Dtype f32 = Dtype::f32;
inline constexpr Dtype f64 = Dtype::f64;
inline constexpr Dtype i64 = Dtype::i64;

/// "float32", "float64" or "int64".
const char* dtype_name(Dtype d);
/// Prints dtype_name(d).
std::ostream& operator<<(std::ostream& os, Dtype d);
/// Bytes per element.
inline std::size_t dtype_size(Dtype d) { return d == Dtype::f32 ? 4 : 8; }
/// True for f32 and f64.
inline bool is_floating(Dtype d) { return d != Dtype::i64; }
/// The dtype of a binary op on a and b, as PyTorch promotes: f64 > f32 > i64.
inline Dtype promote(Dtype a, Dtype b) {
    if (a == Dtype::f64 || b == Dtype::f64) return Dtype::f64;
    if (a == Dtype::f32 || b == Dtype::f32) return Dtype::f32;
    return Dtype::i64;
}

/// The Dtype of a C++ element type (float, double, int64_t).
template <class T>
constexpr Dtype dtype_of();
template <>
constexpr Dtype dtype_of<float>() {
    return Dtype::f32;
}
template <>
constexpr Dtype dtype_of<double>() {
    return Dtype::f64;
}
template <>
constexpr Dtype dtype_of<std::int64_t>() {
    return Dtype::i64;
}

}  // namespace xg

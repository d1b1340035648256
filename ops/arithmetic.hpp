// ops/: elementwise arithmetic, comparisons and selection, with NumPy broadcasting.
// Mixing float32 and float64 promotes to float64; scalars take the tensor's dtype.
#pragma once
#include "../autograd/tensor.hpp"

namespace xg {

/// a + b.
Tensor add(const Tensor& a, const Tensor& b);
/// a - b.
Tensor sub(const Tensor& a, const Tensor& b);
/// a * b.
Tensor mul(const Tensor& a, const Tensor& b);
/// a / b (x/0 gives +-inf or NaN as in IEEE arithmetic).
Tensor div(const Tensor& a, const Tensor& b);
/// -a.
Tensor neg(const Tensor& a);
/// a ** b elementwise; d/da = b a^(b-1), d/db = a^b log(a) (taken as 0 where a == 0, as PyTorch).
Tensor pow(const Tensor& a, const Tensor& b);
/// a ** exponent for a scalar exponent.
Tensor pow(const Tensor& a, double exponent);
/// base ** b for a scalar base.
Tensor pow(double base, const Tensor& b);
/// Elementwise max; at ties the gradient is split equally between a and b (as PyTorch).
Tensor maximum(const Tensor& a, const Tensor& b);
/// Elementwise min; at ties the gradient is split equally between a and b (as PyTorch).
Tensor minimum(const Tensor& a, const Tensor& b);
/// min(max(x, lo), hi); gradient 1 where lo <= x <= hi (bounds included, as PyTorch), else 0.
Tensor clamp(const Tensor& x, double lo, double hi);
/// cond ? a : b elementwise (cond nonzero = true); gradients flow to the chosen side only.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// Comparisons: no gradient. xgrad has no bool dtype: the result holds 0 or 1 in the promoted
// dtype of the inputs (int64 for integer inputs).
/// a == b.
Tensor eq(const Tensor& a, const Tensor& b);
/// a != b.
Tensor ne(const Tensor& a, const Tensor& b);
/// a < b.
Tensor lt(const Tensor& a, const Tensor& b);
/// a <= b.
Tensor le(const Tensor& a, const Tensor& b);
/// a > b.
Tensor gt(const Tensor& a, const Tensor& b);
/// a >= b.
Tensor ge(const Tensor& a, const Tensor& b);

/// A 0-d tensor of value v with the dtype of `like` (for scalar operands).
Tensor scalar_like(double v, const Tensor& like);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(const Tensor& a, double b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(const Tensor& a, double b);
Tensor operator/(double a, const Tensor& b);

}  // namespace xg

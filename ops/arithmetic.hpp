// ops/: elementwise arithmetic, comparisons and selection, with NumPy broadcasting.
// Mixing float32 and float64 promotes to float64 and int64 with a float promotes to the float, as
// PyTorch does; scalars take the tensor's dtype (a fractional scalar makes an int64 tensor float32).
// Shapes that do not broadcast throw ShapeError naming the op and both shapes.
#pragma once
#include "../autograd/tensor.hpp"

namespace xg {

/// a + b.
Tensor add(const Tensor& a, const Tensor& b);
/// a - b.
Tensor sub(const Tensor& a, const Tensor& b);
/// a * b.
Tensor mul(const Tensor& a, const Tensor& b);
/// a / b, true division (int64 / int64 gives float32, as PyTorch); x/0 gives +-inf or NaN (IEEE).
/// d/da = 1/b, d/db = -a/b^2.
Tensor div(const Tensor& a, const Tensor& b);
/// -a.
Tensor neg(const Tensor& a);
/// a ** b elementwise (floating dtypes); d/da = b a^(b-1), taken as 0 where b == 0; d/db = a^b log(a),
/// taken as 0 where a == 0 (both PyTorch's conventions).
Tensor pow(const Tensor& a, const Tensor& b);
/// a ** exponent for a scalar exponent; d = exponent a^(exponent-1) (0 for exponent 0).
Tensor pow(const Tensor& a, double exponent);
/// base ** b for a scalar base; d = base^b log(base) (0 for base 0).
Tensor pow(double base, const Tensor& b);
/// Elementwise max (NaN propagates); at ties the gradient is split equally between a and b (as PyTorch).
Tensor maximum(const Tensor& a, const Tensor& b);
/// Elementwise min (NaN propagates); at ties the gradient is split equally between a and b (as PyTorch).
Tensor minimum(const Tensor& a, const Tensor& b);
/// min(max(x, lo), hi) (bounds may be +-inf; NaN stays NaN); gradient 1 where lo <= x <= hi (bounds
/// included, as PyTorch), else 0. ValueError when lo > hi or a bound is NaN.
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

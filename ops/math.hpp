// ops/: elementwise math functions (floating dtypes; xsimd-vectorised, TBB-parallel).
#pragma once
#include "../autograd/tensor.hpp"

namespace xg {

/// e^x; d = e^x (uses the saved output).
Tensor exp(const Tensor& x);
/// Natural log; log(-1) = NaN, log(0) = -inf as in IEEE/PyTorch; d = 1/x.
Tensor log(const Tensor& x);
/// log(1 + x), accurate near 0; d = 1/(1+x).
Tensor log1p(const Tensor& x);
/// e^x - 1, accurate near 0; d = e^x.
Tensor expm1(const Tensor& x);
/// sqrt(x); d = 1/(2 sqrt(x)) (inf at 0).
Tensor sqrt(const Tensor& x);
/// 1/sqrt(x); d = -1/2 x^(-3/2).
Tensor rsqrt(const Tensor& x);
/// |x|; d = sign(x), so |x|'(0) = 0 (PyTorch's convention).
Tensor abs(const Tensor& x);
/// -1, 0 or 1; gradient 0 everywhere.
Tensor sign(const Tensor& x);
/// x^2; d = 2x.
Tensor square(const Tensor& x);
/// 1/x; d = -1/x^2.
Tensor reciprocal(const Tensor& x);
/// sin(x); d = cos(x).
Tensor sin(const Tensor& x);
/// cos(x); d = -sin(x).
Tensor cos(const Tensor& x);

}  // namespace xg

// ops/: elementwise math functions (xsimd-vectorised, TBB-parallel above the grain size).
// Transcendental functions take float32/float64 only (DtypeError for int64); abs, sign and square
// also take int64. Out-of-domain inputs give NaN or +-inf as in IEEE/PyTorch (log(-1) = NaN).
#pragma once
#include "../autograd/tensor.hpp"

namespace xg {

/// e^x; d = e^x (uses the saved output). Full float32 range: e^88.7 is finite, e^-100 subnormal.
Tensor exp(const Tensor& x);
/// Natural log; log(-1) = NaN, log(0) = -inf as in IEEE/PyTorch; d = 1/x.
Tensor log(const Tensor& x);
/// log(1 + x), accurate near 0; d = 1/(1+x).
Tensor log1p(const Tensor& x);
/// e^x - 1, accurate near 0; d = e^x (from the input: y + 1 would cancel for x << 0).
Tensor expm1(const Tensor& x);
/// sqrt(x); d = 1/(2 sqrt(x)) (inf at 0, as PyTorch).
Tensor sqrt(const Tensor& x);
/// 1/sqrt(x); d = -1/2 x^(-3/2).
Tensor rsqrt(const Tensor& x);
/// |x|; d = sign(x), so |x|'(0) = 0 (PyTorch's convention).
Tensor abs(const Tensor& x);
/// -1, 0 or 1 (NaN stays NaN); gradient 0 everywhere.
Tensor sign(const Tensor& x);
/// x^2 (any dtype); d = 2x.
Tensor square(const Tensor& x);
/// 1/x (1/0 = inf); d = -1/x^2.
Tensor reciprocal(const Tensor& x);
/// sin(x); d = cos(x).
Tensor sin(const Tensor& x);
/// cos(x); d = -sin(x).
Tensor cos(const Tensor& x);

}  // namespace xg

// ops/: matrix products (GEMM through OpenBLAS, split across TBB tasks).
#pragma once
#include "../autograd/tensor.hpp"

namespace xg {

/// Matrix product with torch.matmul semantics: 1-D . 1-D is a dot product; a 1-D operand is
/// treated as a row (left) or column (right) vector; >= 3-D operands are batches of matrices
/// with broadcast batch dimensions. Throws ShapeError naming both shapes on a mismatch and
/// DtypeError for two int64 operands; mixed dtypes promote. Large GEMMs are cut into fixed tiles run
/// as TBB tasks (OpenBLAS itself single-threaded), so results are bit-identical at any thread count.
Tensor matmul(const Tensor& a, const Tensor& b);

/// op(a) . op(b) where op transposes the last two axes when its flag is set (no copy).
/// Both operands at least 2-D; the building block of matmul and of its own gradient.
Tensor matmul_t(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b);

}  // namespace xg

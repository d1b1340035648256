// engine/: value-level structural kernels on Arrays (no graph). The differentiable ops in ops/
// are built on these; each is parallel with TBB above its grain size and deterministic.
#pragma once
#include <cstdint>
#include <vector>

#include "array.hpp"

namespace xg::engine {

/// An array of `shape` filled with `value`.
Array full(const Shape& shape, Dtype dtype, double value);
/// Copy of a with its axes reordered: result axis i is a's axis perm[i].
Array permute(const Array& a, const std::vector<int>& perm);
/// Materialised NumPy broadcast of a to `shape` (throws ShapeError naming op).
Array broadcast_to(const Array& a, const Shape& shape, const char* op = "broadcast_to");
/// Sum over the given normalised, sorted axes.
Array reduce_sum(const Array& a, const std::vector<int>& axes, bool keepdim);
/// Product over the given axes.
Array reduce_prod(const Array& a, const std::vector<int>& axes, bool keepdim);
/// Max (is_max) or min over the given axes; NaN propagates as in PyTorch.
Array reduce_extreme(const Array& a, const std::vector<int>& axes, bool keepdim, bool is_max);
/// Index (int64) of the first max/min along `axis`, or over the flattened array when axis < 0.
Array reduce_arg_extreme(const Array& a, int axis, bool keepdim, bool is_max);
/// Sums a broadcast gradient back to `shape` (the inverse of broadcasting).
Array sum_to(const Array& a, const Shape& shape);
/// One serial BLAS call, row-major: C[m x n] (leading dimension ldc) = op(A) op(B), plus the old C
/// when accumulate; op(A) is m x k and op(B) k x n, lda and ldb are the leading dimensions of the
/// stored (untransposed) operands. Float and double; k == 0 gives zeros (or leaves C when accumulating).
template <class T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc, bool accumulate = false);
/// Matrix product with NumPy/PyTorch matmul semantics (1-D, 2-D, batched with broadcast batch dims).
Array matmul(const Array& a, const Array& b, bool transpose_a = false, bool transpose_b = false);
/// Elements start, start+step, ... < stop along axis (already clamped, step > 0).
Array slice(const Array& a, int axis, std::int64_t start, std::int64_t stop, std::int64_t step);
/// Zeros of `shape` with `src` written at the positions slice() reads.
Array slice_scatter(const Array& src, const Shape& shape, int axis, std::int64_t start, std::int64_t step);
/// Concatenation along axis (shapes already checked).
Array concat(const std::vector<Array>& parts, int axis);
/// Rows of a along axis picked by a 1-D int64 index.
Array index_select(const Array& a, int axis, const Array& index);
/// Zeros of `shape`; src added at the rows index_select read (repeated indices accumulate).
Array index_add(const Array& src, const Shape& shape, int axis, const Array& index);
/// out[i][j] = a[i][index[i][j]] along axis (index has a's rank).
Array gather(const Array& a, int axis, const Array& index);
/// Zeros of `shape`; src added at the positions gather read.
Array scatter_add(const Array& src, const Shape& shape, int axis, const Array& index);

}  // namespace xg::engine

// ops/: shape and indexing ops. reshape-like ops share the input's buffer; the others copy.
#pragma once
#include <cstdint>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg {

/// Same elements in a new shape; one dimension may be -1 (inferred).
Tensor reshape(const Tensor& x, Shape shape);
/// Flattens dimensions start..end (inclusive) into one.
Tensor flatten(const Tensor& x, std::int64_t start = 0, std::int64_t end = -1);
/// Removes every dimension of size 1.
Tensor squeeze(const Tensor& x);
/// Removes dimension `axis` if it has size 1 (otherwise returns x unchanged, as PyTorch).
Tensor squeeze(const Tensor& x, std::int64_t axis);
/// Inserts a dimension of size 1 at `axis` (in [-ndim-1, ndim]).
Tensor unsqueeze(const Tensor& x, std::int64_t axis);
/// Swaps two axes.
Tensor transpose(const Tensor& x, std::int64_t axis0, std::int64_t axis1);
/// Reorders axes: result axis i is x's axis perm[i].
Tensor permute(const Tensor& x, const std::vector<std::int64_t>& perm);
/// Broadcasts x to `shape` (NumPy rules); the gradient is summed back.
Tensor broadcast_to(const Tensor& x, const Shape& shape);
/// Sums x down to `shape` (x's shape must be a broadcast of it); the gradient is broadcast back.
Tensor sum_to(const Tensor& x, const Shape& shape);
/// x[start:stop:step] along axis, Python slice semantics (negative and out-of-range bounds clamp);
/// step must be positive.
Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1);
/// Entries of x along axis at the positions of a 0-d or 1-d int64 index (repeats allowed, negative
/// indices count from the end; IndexError outside [-n, n)). The gradient adds up repeats.
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& index);
/// out[..i..] = x[..index[..i..]..] along axis; index is int64 with x's rank and no larger than x
/// outside axis (ShapeError otherwise). The gradient adds up repeats.
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index);
/// Joins tensors along an existing axis (dtypes are promoted; shapes must agree elsewhere).
Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis = 0);
/// Joins tensors of equal shape along a new axis.
Tensor stack(const std::vector<Tensor>& xs, std::int64_t axis = 0);
/// Splits x along axis into chunks of `size` (the last may be smaller).
std::vector<Tensor> split(const Tensor& x, std::int64_t size, std::int64_t axis = 0);
/// Splits x along axis into pieces of the given sizes (they must sum to the axis length).
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t axis = 0);
/// One-hot encoding of an int64 tensor: shape index.shape + [num_classes], dtype (default f32). No gradient.
/// num_classes = -1 infers max(index) + 1 (as PyTorch); a class outside [0, num_classes) throws IndexError.
Tensor one_hot(const Tensor& index, std::int64_t num_classes = -1, Dtype dtype = Dtype::f32);

}  // namespace xg

// ops/: reductions. `axes` empty means all axes (negative axes count from the end; a 0-d tensor
// accepts 0 and -1); keepdim keeps reduced axes with size 1. An axis out of range or repeated throws
// IndexError naming the op. Results are bit-identical at any thread count.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg {

using Axes = std::vector<std::int64_t>;

/// Sum over axes (int64 stays int64; 0 over an empty dimension).
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Mean over axes (floating dtypes; NaN for an empty reduction, as PyTorch).
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Variance over axes: sum((x - mean)^2) / (n - correction) (correction 1: Bessel's; NaN when n <= correction).
Tensor var(const Tensor& x, const Axes& axes = {}, std::int64_t correction = 1, bool keepdim = false);
/// Standard deviation sqrt(var); its gradient is 0 where the std is 0 (PyTorch's std_backward).
Tensor std(const Tensor& x, const Axes& axes = {}, std::int64_t correction = 1, bool keepdim = false);
/// Product over axes (1 over an empty dimension); the gradient is the product of the other elements,
/// exact at zeros, also for higher derivatives.
Tensor prod(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Max over axes (NaN propagates). At ties the gradient is split equally among the maxima (like
/// torch.amax). ValueError when a reduced dimension is empty.
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Min over axes (NaN propagates). At ties the gradient is split equally among the minima (like
/// torch.amin). ValueError when a reduced dimension is empty.
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Index (int64) of the first maximum along axis, or in the flattened tensor when axis is empty; NaN
/// counts as the maximum (PyTorch). No gradient. ValueError for an empty reduction.
Tensor argmax(const Tensor& x, std::optional<std::int64_t> axis = std::nullopt, bool keepdim = false);
/// Index (int64) of the first minimum along axis, or in the flattened tensor when axis is empty; NaN
/// counts as the minimum (PyTorch). No gradient. ValueError for an empty reduction.
Tensor argmin(const Tensor& x, std::optional<std::int64_t> axis = std::nullopt, bool keepdim = false);
/// log(sum(exp(x))) over axes, computed stably (max subtracted; fine at +-1e4, -inf for an empty or
/// all -inf slice); gradient softmax(x).
Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdim = false);

}  // namespace xg

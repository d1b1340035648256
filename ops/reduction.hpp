// ops/: reductions. `axes` empty means all axes; keepdim keeps reduced axes with size 1.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg {

using Axes = std::vector<std::int64_t>;

/// Sum over axes.
Tensor sum(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Mean over axes (NaN for an empty reduction, as PyTorch).
Tensor mean(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Variance over axes with Bessel's correction (divides by n - correction).
Tensor var(const Tensor& x, const Axes& axes = {}, std::int64_t correction = 1, bool keepdim = false);
/// Standard deviation sqrt(var); its gradient is NaN where the deviation is 0 (as PyTorch).
Tensor std(const Tensor& x, const Axes& axes = {}, std::int64_t correction = 1, bool keepdim = false);
/// Product over axes; the gradient handles zeros exactly (product of the other elements).
Tensor prod(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Max over axes. At ties the gradient is split equally among the maxima (like torch.amax).
Tensor max(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Min over axes. At ties the gradient is split equally among the minima (like torch.amin).
Tensor min(const Tensor& x, const Axes& axes = {}, bool keepdim = false);
/// Index (int64) of the first maximum along axis, or in the flattened tensor when axis is empty.
Tensor argmax(const Tensor& x, std::optional<std::int64_t> axis = std::nullopt, bool keepdim = false);
/// Index (int64) of the first minimum along axis, or in the flattened tensor when axis is empty.
Tensor argmin(const Tensor& x, std::optional<std::int64_t> axis = std::nullopt, bool keepdim = false);
/// log(sum(exp(x))) over axes, computed stably (max subtracted); gradient softmax(x).
Tensor logsumexp(const Tensor& x, const Axes& axes = {}, bool keepdim = false);

}  // namespace xg

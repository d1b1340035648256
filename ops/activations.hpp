// ops/: activation functions. Each forward saves only what its backward needs, and each backward
// is one fused kernel that is itself a differentiable op (so any order of derivative works).
#pragma once
#include <cstdint>

#include "../autograd/tensor.hpp"

namespace xg {

/// 1 / (1 + e^-x); d = y (1 - y) from the saved output. sigmoid'(+-1e4) = 0, no NaN.
Tensor sigmoid(const Tensor& x);
/// tanh(x); d = 1 - y^2 from the saved output.
Tensor tanh(const Tensor& x);
/// max(x, 0); relu'(0) = 0 (PyTorch's convention).
Tensor relu(const Tensor& x);
/// exp(x) / sum(exp(x)) along axis, stable at logits of +-1e4.
Tensor softmax(const Tensor& x, std::int64_t axis = -1);
/// x - logsumexp(x) along axis, stable at logits of +-1e4.
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1);

/// Fused g * y * (1 - y): the gradient of sigmoid given its output y.
Tensor sigmoid_backward(const Tensor& g, const Tensor& y);
/// Fused g * (1 - y^2): the gradient of tanh given its output y.
Tensor tanh_backward(const Tensor& g, const Tensor& y);
/// Fused g * (y > 0): the gradient of relu given its output y.
Tensor relu_backward(const Tensor& g, const Tensor& y);

}  // namespace xg

// ops/: activation functions. float32 and float64, xsimd-vectorised and TBB-parallel. Each forward
// saves only what its backward needs (the output where the derivative is a function of it; relu
// one bit per element), and each backward is one fused pass. gelu (both forms), silu and swish,
// whose derivatives cost more to compute than to read, also write f'(x) in the forward pass when x
// requires grad (one more tensor of x's size kept until backward); a backward that records no graph
// then multiplies by it, in place. A backward writes into the buffer it read when nothing else can
// see that buffer any more (a saved derivative, or a saved output whose tensor is gone), on the
// graph's last use. Every backward is itself a differentiable op (name_backward,
// whose own gradient is name_backward2, ...), so gradgradcheck holds for every one of them.
//
// Derivative conventions at kinks (all as in PyTorch 1.13):
//   relu'(0) = 0                      hardtanh, relu6: 0 at and beyond both bounds
//   leaky_relu'(0) = negative_slope   prelu'(0) = weight (d/dweight = x for x <= 0)
//   rrelu'(0) = the slope drawn for that element (training) or (lower + upper) / 2 (eval)
//   elu'(0) = alpha, selu'(0) = scale * alpha, celu'(0) = 1
//   hardsigmoid'(+-3) = 0             hardswish'(-3) = -0.5, hardswish'(3) = 1.5 (hardswish''(+-3) = 0)
//   softshrink, hardshrink: 0 at +-lambda        threshold: 0 at the threshold
//   softplus: switches to the identity where x * beta > threshold (strictly), derivative 1 there
//   softsign''(0) = 0 (|x|'(0) = 0)   step / heaviside: see StepOptions
// Extreme inputs (+-20, +-88, +-1e4, and beyond) give no inf or NaN where the true value is
// finite: softplus(1e4) = 1e4, log_sigmoid(-1e4) = -1e4, sigmoid'(-1e4) = 0, gelu(-1e4) = -0.
#pragma once
#include <cstdint>
#include <string>

#include "../autograd/tensor.hpp"

namespace xg {

/// 1 / (1 + e^-x); d = y (1 - y) from the saved output. sigmoid'(+-1e4) = 0, no NaN.
Tensor sigmoid(const Tensor& x);
/// tanh(x); d = 1 - y^2 from the saved output.
Tensor tanh(const Tensor& x);
/// max(x, 0); d = (y > 0), kept as one bit per element (the output itself is not saved), so
/// relu'(0) = 0. Backward selects: a NaN gradient gives 0 where relu' = 0, as in PyTorch.
Tensor relu(const Tensor& x);
/// min(max(x, 0), 6) (PyTorch's hardtanh(0, 6)); d = 1 on (0, 6), 0 elsewhere, bounds included.
Tensor relu6(const Tensor& x);
/// min(max(x, min_val), max_val); d = 1 on (min_val, max_val), 0 elsewhere (bounds included).
Tensor hardtanh(const Tensor& x, double min_val = -1.0, double max_val = 1.0);
/// x for x > 0, negative_slope * x otherwise; d = 1 or negative_slope (negative_slope at 0).
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// x for x > 0, weight * x otherwise, with a learnable weight of 1 element or one per channel
/// (dimension 1 of x, PyTorch's layout); d/dx = 1 or weight, d/dweight = 0 or x (summed per channel).
Tensor prelu(const Tensor& x, const Tensor& weight);
/// Randomized leaky relu: in training each x <= 0 gets a slope drawn uniformly from [lower, upper]
/// (xgrad's seeded generator), in eval the slope is (lower + upper) / 2. d = 1 or the slope.
Tensor rrelu(const Tensor& x, double lower = 1.0 / 8.0, double upper = 1.0 / 3.0, bool training = false);
/// x for x > 0, alpha (e^x - 1) otherwise; d = 1 or y + alpha (from the output when alpha >= 0).
Tensor elu(const Tensor& x, double alpha = 1.0);
/// scale * elu(x, alpha) with PyTorch's constants scale = 1.0507..., alpha = 1.6732...
Tensor selu(const Tensor& x);
/// x for x > 0, alpha (e^(x/alpha) - 1) otherwise; d = 1 or y / alpha + 1 (alpha != 0).
Tensor celu(const Tensor& x, double alpha = 1.0);
/// GELU. approximate = "none": x Phi(x) = x/2 erfc(-x/sqrt 2), d = Phi(x) + x phi(x);
/// approximate = "tanh": x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), computed as x sigmoid(2u).
Tensor gelu(const Tensor& x, const std::string& approximate = "none");
/// SiLU x sigmoid(x); d = s (1 + x (1 - s)).
Tensor silu(const Tensor& x);
/// Swish x sigmoid(beta x) with a fixed beta; d = s (1 + beta x (1 - s)).
Tensor swish(const Tensor& x, double beta = 1.0);
/// Swish x sigmoid(beta x) with a learnable beta tensor (1 element, or broadcast to x's shape);
/// d/dbeta = x^2 s (1 - s).
Tensor swish(const Tensor& x, const Tensor& beta);
/// Mish x tanh(softplus(x)); tanh(softplus(x)) is computed as n / (n + 2), n = e^x (e^x + 2).
Tensor mish(const Tensor& x);
/// log(1 + e^(beta x)) / beta, and x where x * beta > threshold; d = sigmoid(beta x) or 1.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
/// x / (1 + |x|); d = 1 / (1 + |x|)^2.
Tensor softsign(const Tensor& x);
/// min(max(x / 6 + 1/2, 0), 1); d = 1/6 on (-3, 3), 0 elsewhere (bounds included).
Tensor hardsigmoid(const Tensor& x);
/// x min(max(x + 3, 0), 6) / 6; d = 0 for x < -3, x/3 + 1/2 on [-3, 3], 1 for x > 3.
Tensor hardswish(const Tensor& x);
/// log(sigmoid(x)) = -softplus(-x), stable (log_sigmoid(-1e4) = -1e4); d = sigmoid(-x).
Tensor log_sigmoid(const Tensor& x);
/// x - tanh(x); d = tanh(x)^2.
Tensor tanhshrink(const Tensor& x);
/// x - lambd for x > lambd, x + lambd for x < -lambd, 0 otherwise; d = 0 on [-lambd, lambd].
Tensor softshrink(const Tensor& x, double lambd = 0.5);
/// x for |x| > lambd, 0 otherwise; d = 0 on [-lambd, lambd].
Tensor hardshrink(const Tensor& x, double lambd = 0.5);
/// x for x > threshold, value otherwise; d = 0 for x <= threshold.
Tensor threshold(const Tensor& x, double threshold, double value);

/// The gradient a step function passes back.
enum class StepSurrogate {
    none,              ///< the true derivative: 0 everywhere (PyTorch has none for heaviside)
    straight_through,  ///< identity: d = 1 (the straight-through estimator)
    sigmoid,           ///< d = k s (1 - s), s = sigmoid(k (x - threshold)): a sigmoid of slope k
};
/// Options of step().
struct StepOptions {
    double threshold = 0.0;           ///< where the step happens
    double value_at_threshold = 1.0;  ///< f(threshold) (1: the step fires at the threshold)
    StepSurrogate surrogate = StepSurrogate::none;
    double slope = 1.0;  ///< k of the sigmoid surrogate
};
/// 1 for x > threshold, 0 below, value_at_threshold at it (NaN stays NaN); backward passes the
/// chosen surrogate gradient (zero by default).
Tensor step(const Tensor& x, const StepOptions& options = {});
/// torch.heaviside(x, value): 1 for x > 0, 0 for x < 0, value at 0; zero gradient.
Tensor heaviside(const Tensor& x, double value = 0.5);

/// Gated linear unit along axis: a * sigmoid(b) with a, b the two halves of x (size must be even).
Tensor glu(const Tensor& x, std::int64_t axis = -1);
/// exp(x) / sum(exp(x)) along axis, stable at logits of +-1e4; d = y (g - sum(g y)).
Tensor softmax(const Tensor& x, std::int64_t axis = -1);
/// x - logsumexp(x) along axis, stable at logits of +-1e4; d = g - e^y sum(g).
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1);
/// softmax(-x) along axis.
Tensor softmin(const Tensor& x, std::int64_t axis = -1);

/// Fused g * y * (1 - y): the gradient of sigmoid given its output y.
Tensor sigmoid_backward(const Tensor& g, const Tensor& y);
/// Fused g * (1 - y^2): the gradient of tanh given its output y.
Tensor tanh_backward(const Tensor& g, const Tensor& y);
/// Fused g * (y > 0): the gradient of relu given its output y.
Tensor relu_backward(const Tensor& g, const Tensor& y);
/// Fused y (g - sum(g y)) along axis: the gradient of softmax given its output y.
Tensor softmax_backward(const Tensor& g, const Tensor& y, std::int64_t axis = -1);
/// Fused g - e^y sum(g) along axis: the gradient of log_softmax given its output y.
Tensor log_softmax_backward(const Tensor& g, const Tensor& y, std::int64_t axis = -1);

}  // namespace xg

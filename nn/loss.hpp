// nn/: loss functions, composed from differentiable ops (so any order of derivative works).
#pragma once
#include "../autograd/tensor.hpp"

namespace xg::nn {

/// How per-element (or per-sample) losses are combined.
enum class Reduction { mean, sum, none };

/// (input - target)^2, reduced.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// |input - target|, reduced.
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// d = input - target: 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere (beta = 0: l1).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
                      double beta = 1.0);
/// d = input - target: 0.5 d^2 where |d| <= delta, delta (|d| - 0.5 delta) elsewhere.
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean, double delta = 1.0);
/// Cross-entropy of logits [N, C, ...] (class axis 1) against int64 class indices [N, ...] or class
/// probabilities of the logits' shape. With label smoothing e the target becomes (1 - e) target + e / C:
/// per sample -(1 - e) log p[y] - e/C sum_c log p[c]. The mean is over samples (and positions).
/// Logits [N, C] with class indices run as one fused op (per-row log-sum-exp and the loss in one pass;
/// backward (softmax - target distribution) * g in one pass; differentiable again under create_graph).
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::mean,
                     double label_smoothing = 0.0);
/// Negative log-likelihood of log-probabilities [N, C, ...] at int64 class indices [N, ...]: -logp[n, y_n].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction reduction = Reduction::mean);
/// -(y log p + (1 - y) log(1 - p)) with each log clamped at -100 (as PyTorch); p in [0, 1].
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction reduction = Reduction::mean);
/// binary_cross_entropy(sigmoid(x), y) computed stably: max(x, 0) - x y + log(1 + e^-|x|); finite and
/// with gradient sigmoid(x) - y even at x = +-1e4.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction reduction = Reduction::mean);

}  // namespace xg::nn

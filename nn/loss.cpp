#include "loss.hpp"

#include <limits>

#include "../engine/error.hpp"
#include "../ops/activations.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/math.hpp"
#include "../ops/reduction.hpp"
#include "../ops/shape_ops.hpp"

namespace xg::nn {

namespace {
void check_defined(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": an input is undefined");
}

void check_same_shape(const Tensor& input, const Tensor& target, const char* op) {
    check_defined(input, op);
    check_defined(target, op);
    if (input.shape() != target.shape())
        throw ShapeError(std::string(op) + ": input shape " + shape_str(input.shape()) + " and target shape " +
                         shape_str(target.shape()) + " differ");
    if (!is_floating(input.dtype()) || !is_floating(target.dtype()))
        throw DtypeError(std::string(op) + ": input and target must be floating tensors");
}

Tensor reduce(const Tensor& loss, Reduction r) {
    switch (r) {
        case Reduction::mean:
            return mean(loss);
        case Reduction::sum:
            return sum(loss);
        default:
            return loss;
    }
}

// Checks int64 class indices [N, ...] against log-probabilities [N, C, ...]; returns C.
std::int64_t check_indices(const Tensor& scores, const Tensor& target, const char* op) {
    if (scores.ndim() < 2)
        throw ShapeError(std::string(op) + ": expected input [N, C, ...], got " + shape_str(scores.shape()));
    Shape want = scores.shape();
    want.erase(want.begin() + 1);
    if (target.shape() != want)
        throw ShapeError(std::string(op) + ": target of shape " + shape_str(target.shape()) + " does not match input " +
                         shape_str(scores.shape()) + " (expected " + shape_str(want) + ")");
    const std::int64_t c = scores.size(1);
    for (auto v : target.to_vector<std::int64_t>())
        if (v < 0 || v >= c)
            throw IndexError(std::string(op) + ": target class " + std::to_string(v) + " is out of range for " +
                             std::to_string(c) + " classes");
    return c;
}

// -logp[n, y_n, ...] per sample (shape of target).
Tensor picked_nll(const Tensor& logp, const Tensor& target) {
    return -squeeze(gather(logp, 1, unsqueeze(target, 1)), 1);
}
}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r) {
    check_same_shape(input, target, "mse_loss");
    return reduce(square(input - target), r);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r) {
    check_same_shape(input, target, "l1_loss");
    return reduce(abs(input - target), r);
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction r, double beta) {
    check_same_shape(input, target, "smooth_l1_loss");
    if (beta < 0) throw ValueError("smooth_l1_loss: beta must be non-negative, got " + std::to_string(beta));
    const Tensor d = abs(input - target);
    if (beta == 0) return reduce(d, r);
    const Tensor small = lt(d, scalar_like(beta, d));
    return reduce(where(small, square(d) * (0.5 / beta), d - 0.5 * beta), r);
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction r, double delta) {
    check_same_shape(input, target, "huber_loss");
    if (!(delta > 0)) throw ValueError("huber_loss: delta must be positive, got " + std::to_string(delta));
    const Tensor d = abs(input - target);
    const Tensor small = le(d, scalar_like(delta, d));
    return reduce(where(small, square(d) * 0.5, (d - 0.5 * delta) * delta), r);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, Reduction r) {
    check_defined(log_probs, "nll_loss");
    check_defined(target, "nll_loss");
    if (target.dtype() != Dtype::i64) throw DtypeError("nll_loss: target must hold int64 class indices");
    check_indices(log_probs, target, "nll_loss");
    return reduce(picked_nll(log_probs, target), r);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction r, double ls) {
    check_defined(logits, "cross_entropy");
    check_defined(target, "cross_entropy");
    if (!is_floating(logits.dtype())) throw DtypeError("cross_entropy: logits must be floating");
    if (!(ls >= 0.0 && ls <= 1.0))
        throw ValueError("cross_entropy: label_smoothing must be in [0, 1], got " + std::to_string(ls));
    if (logits.ndim() < 2)
        throw ShapeError("cross_entropy: expected logits [N, C, ...], got " + shape_str(logits.shape()));
    const Tensor logp = log_softmax(logits, 1);
    const double c = static_cast<double>(logits.size(1));
    Tensor loss;
    if (target.dtype() == Dtype::i64) {
        check_indices(logits, target, "cross_entropy");
        loss = picked_nll(logp, target);
        if (ls > 0) loss = loss * (1.0 - ls) - sum(logp, {1}) * (ls / c);
    } else {
        if (target.shape() != logits.shape())
            throw ShapeError("cross_entropy: probability target of shape " + shape_str(target.shape()) +
                             " must match logits " + shape_str(logits.shape()));
        const Tensor t = ls > 0 ? target * (1.0 - ls) + ls / c : target;
        loss = -sum(t * logp, {1});
    }
    return reduce(loss, r);
}

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, Reduction r) {
    check_same_shape(probs, target, "binary_cross_entropy");
    // NOTE: log(0) = -inf is clamped at -100 (PyTorch), so a confident wrong answer costs 100, not inf.
    // log is taken of where(q > 0, q, 1): at q == 0 its rule would compute 0/0 = NaN even though the
    // clamp passes no gradient.
    const double inf = std::numeric_limits<double>::infinity();
    auto clamped_log = [&](const Tensor& q) {
        const Tensor pos = gt(q, scalar_like(0.0, q));
        const Tensor one = scalar_like(1.0, q);
        return clamp(where(pos, log(where(pos, q, one)), scalar_like(-100.0, q)), -100.0, inf);
    };
    return reduce(-(target * clamped_log(probs) + (1.0 - target) * clamped_log(1.0 - probs)), r);
}

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& target, Reduction r) {
    check_same_shape(x, target, "binary_cross_entropy_with_logits");
    // -log sigmoid(x) = log(1 + e^-x) = logsumexp(0, -x): smooth everywhere (also at x = 0, where the
    // max(x,0) + log1p(e^-|x|) form has two kinks) and stable at +-1e4. Loss = softplus(-x) + (1 - y) x.
    const Tensor softplus_neg = logsumexp(stack({zeros_like(x), -x}, 0), {0});
    return reduce(softplus_neg + (1.0 - target) * x, r);
}

}  // namespace xg::nn

#include "loss.hpp"

#include <cmath>
#include <limits>

#include "../autograd/node.hpp"
#include "../engine/error.hpp"
#include "../engine/kernels.hpp"
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

// --- fused softmax + cross-entropy over logits [N, C] with class indices -----------------------------
// Per row n with lse = log sum_c e^x[n,c]: loss_n = lse - (1 - e) x[n,y_n] - e/C sum_c x[n,c] (e the label
// smoothing; the same value as the log_softmax + gather formula). d loss_n / dx[n,c] = softmax - (1 - e)
// [c == y_n] - e/C, scaled by the incoming gradient (and 1/N for the mean).
template <class T>
void ce_forward_rows(const T* x, const std::int64_t* y, std::int64_t n, std::int64_t c, double ls, T* lse, T* loss) {
    using B = xsimd::batch<T>;
    constexpr std::int64_t W = B::size;
    const T keep = static_cast<T>(1.0 - ls), spread = static_cast<T>(ls / static_cast<double>(c));
    const std::int64_t grain = std::max<std::int64_t>(1, detail::scaled_grain<T>(detail::kGrainTranscendental) / c);
    detail::parallel_for(n, grain, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
            const T* row = x + r * c;
            T mx = -std::numeric_limits<T>::infinity(), sx = 0;
            for (std::int64_t j = 0; j < c; ++j) {
                mx = std::max(mx, row[j]);
                sx += row[j];
            }
            if (std::isnan(sx)) mx = sx;  // NaN propagates (std::max may drop it)
            const T shift = std::isfinite(mx) ? mx : T(0);
            B acc(T(0));
            std::int64_t j = 0;
            for (; j + W <= c; j += W) acc += xsimd::exp(B::load_unaligned(row + j) - B(shift));
            T se = xsimd::hadd(acc);
            for (; j < c; ++j) se += std::exp(row[j] - shift);
            const T l = shift + std::log(se);
            lse[r] = l;
            loss[r] = l - keep * row[y[r]] - (ls > 0 ? spread * sx : T(0));
        }
    });
}

template <class T>
void ce_backward_rows(const T* x, const std::int64_t* y, const T* lse, const T* scale, bool per_row, std::int64_t n,
                      std::int64_t c, double ls, T* dx) {
    using B = xsimd::batch<T>;
    constexpr std::int64_t W = B::size;
    const T keep = static_cast<T>(1.0 - ls), spread = static_cast<T>(ls / static_cast<double>(c));
    const std::int64_t grain = std::max<std::int64_t>(1, detail::scaled_grain<T>(detail::kGrainTranscendental) / c);
    detail::parallel_for(n, grain, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
            const T* row = x + r * c;
            T* out = dx + r * c;
            const T s = per_row ? scale[r] : scale[0], l = lse[r];
            std::int64_t j = 0;
            for (; j + W <= c; j += W)
                ((xsimd::exp(B::load_unaligned(row + j) - B(l)) - B(spread)) * B(s)).store_unaligned(out + j);
            for (; j < c; ++j) out[j] = (std::exp(row[j] - l) - spread) * s;
            out[y[r]] -= keep * s;
        }
    });
}

Tensor fused_cross_entropy(const Tensor& logits, const Tensor& target, Reduction r, double ls) {
    const std::int64_t n = logits.size(0), c = logits.size(1);
    const Dtype d = logits.dtype();
    Array lse({n}, d), per({n}, d);
    const Array tgt = target.array();
    detail::dispatch_floating(d, "cross_entropy", [&]<class T>() {
        ce_forward_rows<T>(logits.array().data<T>(), tgt.data<std::int64_t>(), n, c, ls, lse.data<T>(), per.data<T>());
    });
    Array value = per;
    if (r != Reduction::none) {
        value = Array({}, d);
        detail::dispatch_floating(d, "cross_entropy", [&]<class T>() {
            double total = 0;  // in order: the same at any thread count
            for (std::int64_t i = 0; i < n; ++i) total += per.data<T>()[i];
            value.data<T>()[0] = static_cast<T>(r == Reduction::mean ? total / static_cast<double>(n) : total);
        });
    }
    if (!needs_record({logits})) return Tensor(std::move(value));
    Saved sx(logits, "cross_entropy");
    return make_result("cross_entropy", std::move(value), {logits},
                       [sx, tgt, lse, r, ls, n, c, d](const Tensor& g, const Tensor&) {
                           const Tensor& x = sx.get();
                           if (needs_record({g, x})) {
                               // create_graph: (softmax - target distribution) * g as recorded ops.
                               Tensor dist = one_hot(Tensor(tgt), c, d) * (1.0 - ls);
                               if (ls > 0) dist = dist + ls / static_cast<double>(c);
                               Tensor scale = r == Reduction::none ? unsqueeze(g, 1) : g;
                               if (r == Reduction::mean) scale = scale * (1.0 / static_cast<double>(n));
                               return std::vector<Tensor>{(softmax(x, 1) - dist) * scale};
                           }
                           Array dx(x.shape(), d);
                           const Array ga = g.array().to(d);
                           detail::dispatch_floating(d, "cross_entropy", [&]<class T>() {
                               Array sc = ga;
                               if (r == Reduction::mean) {
                                   sc = Array({}, d);
                                   sc.data<T>()[0] = static_cast<T>(ga.data<T>()[0] / static_cast<double>(n));
                               }
                               ce_backward_rows<T>(x.array().data<T>(), tgt.data<std::int64_t>(), lse.data<T>(),
                                                   sc.data<T>(), r == Reduction::none, n, c, ls, dx.data<T>());
                           });
                           return std::vector<Tensor>{Tensor(std::move(dx))};
                       });
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
    if (target.dtype() == Dtype::i64 && logits.ndim() == 2 && logits.size(0) > 0 && logits.size(1) > 0) {
        check_indices(logits, target, "cross_entropy");
        return fused_cross_entropy(logits, target, r, ls);
    }
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

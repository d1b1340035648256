#include "parallel.hpp"

#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <map>
#include <string>

#include "../engine/kernels.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/shape_ops.hpp"

namespace xg::nn {

namespace {
// Points every parameter and buffer of `replica` at the corresponding buffer of `master`.
void share_state(const Module& master, Module& replica) {
    const StateDict m = master.state_dict();
    std::map<std::string, Tensor> r;
    for (const auto& [name, t] : replica.state_dict()) r.emplace(name, t);
    if (m.size() != r.size())
        throw ValueError("DataParallel: the replica has " + std::to_string(r.size()) +
                         " parameters and buffers, the model " + std::to_string(m.size()));
    for (const auto& [name, t] : m) {
        auto it = r.find(name);
        if (it == r.end()) throw ValueError("DataParallel: the replica has no entry '" + name + "'");
        if (it->second.shape() != t.shape() || it->second.dtype() != t.dtype())
            throw ShapeError("DataParallel: '" + name + "' has shape " + shape_str(it->second.shape()) +
                             " in the replica and " + shape_str(t.shape()) + " in the model");
        // Same buffer under the replica's own reference count: the shards' threads then never
        // write to one shared counter when their ops take references to a parameter.
        it->second.impl()->value = t.array().alias();
    }
}
// A shard's rows [b, e) of a batch tensor, as a leaf of the shard's own graph: an alias of the
// buffer under its own reference count (every op of a shard copies references to its input, and
// with one shared count the cores would pass that counter's line back and forth on each copy).
// It never links to the batch's graph: concurrent passes must share no node. When the batch needs
// a gradient the shard leaf requires grad, and forward_backward passes the rows' gradients on.
Tensor shard_rows(const Tensor& t, std::int64_t b, std::int64_t e) {
    Tensor rows = slice(Tensor(t.array().alias()), 0, b, e);
    if (t.requires_grad()) rows.requires_grad_(true);
    return rows;
}

// Sends the rows' gradients (each already weighted by its shard's n_k / N) into `batch`: into its
// graph, or its .grad for a leaf. Shards whose loss did not reach their rows contribute zeros.
void pass_on_row_gradients(const Tensor& batch, const std::vector<Tensor>& rows) {
    NoGradGuard no_grad;
    std::vector<Tensor> parts;
    bool any = false;
    for (const Tensor& r : rows) {
        const Tensor g = r.grad();
        any |= g.defined();
        parts.push_back(g.defined() ? g : zeros_like(r));
    }
    if (any) batch.backward(parts.size() == 1 ? parts[0] : concat(parts, 0));
}
}  // namespace

DataParallel::DataParallel(std::shared_ptr<Module> model, const std::function<std::shared_ptr<Module>()>& make_replica,
                           int shards)
    : model_(std::move(model)), shards_(shards) {
    if (!model_) throw ValueError("DataParallel: the model is null");
    if (shards < 1) throw ValueError("DataParallel: shards must be >= 1, got " + std::to_string(shards));
    for (int g = 0; g < std::min(shards, kGroups); ++g) {
        auto replica = make_replica();
        if (!replica) throw ValueError("DataParallel: make_replica returned null");
        share_state(*model_, *replica);
        replica->train(model_->is_training());
        replica_params_.push_back(replica->parameters());
        replicas_.push_back(std::move(replica));
    }
}

double DataParallel::forward_backward(const Tensor& inputs, const Tensor& targets, const ShardLoss& loss) {
    if (inputs.ndim() == 0 || targets.ndim() == 0 || inputs.size(0) != targets.size(0))
        throw ShapeError("DataParallel: inputs " + shape_str(inputs.shape()) + " and targets " +
                         shape_str(targets.shape()) + " need the same (non-empty) first dimension");
    const std::int64_t n = inputs.size(0);
    const std::int64_t used = std::min<std::int64_t>(shards_, n);  // shards of at least one sample
    const auto groups = std::min<std::int64_t>(static_cast<std::int64_t>(replicas_.size()), used);
    auto bounds = [&](std::int64_t k) { return std::pair{n * k / used, n * (k + 1) / used}; };
    auto group_shards = [&](std::int64_t g) { return std::pair{used * g / groups, used * (g + 1) / groups}; };
    std::vector<double> losses(static_cast<std::size_t>(used)), weights(static_cast<std::size_t>(used));
    for (std::int64_t k = 0; k < used; ++k) {
        const auto [b, e] = bounds(k);
        weights[k] = static_cast<double>(e - b) / static_cast<double>(n);
    }
    std::vector<Tensor> input_rows(static_cast<std::size_t>(used)), target_rows(static_cast<std::size_t>(used));
    // One task per group of consecutive shards, on the group's replica: each shard's loss is
    // back-propagated with weight n_k / N, so the replica's gradients add up, in shard order, to
    // the group's part of the mean-loss gradient. The shards' gradients never leave the core that
    // made them; only the group sums are combined below.
    tbb::parallel_for(
        std::int64_t(0), groups,
        [&](std::int64_t g) {
            EnableGradGuard grad_on;  // grad mode is thread-local: TBB workers start with the default
            Module& replica = *replicas_[g];
            if (replica.is_training() != model_->is_training()) replica.train(model_->is_training());
            for (Tensor& p : replica_params_[g]) p.zero_grad();
            const auto [first, last] = group_shards(g);
            for (std::int64_t k = first; k < last; ++k) {
                const auto [b, e] = bounds(k);
                const Tensor x = shard_rows(inputs, b, e), y = shard_rows(targets, b, e);
                // Kept past the task only when their gradients are needed: blocks freed on another
                // thread go to that thread's pool.
                if (x.requires_grad()) input_rows[k] = x;
                if (y.requires_grad()) target_rows[k] = y;
                Tensor l = loss(replica(x), y);
                if (!l.defined() || l.numel() != 1)
                    throw ShapeError("DataParallel: the loss must return one element, got shape " +
                                     (l.defined() ? shape_str(l.shape()) : std::string("undefined")));
                l.backward(full_like(l, weights[k]));
                losses[k] = l.item<double>();
            }
        },
        affinity_);
    double mean_loss = 0;
    for (std::int64_t k = 0; k < used; ++k) mean_loss += losses[k] * weights[k];
    // Fixed-order combination: total[j] = sum_g grad_g[j], in group order for every element. The
    // work is cut into pieces of parameters, in parallel tasks.
    const std::vector<Tensor> params = model_->parameters();
    if (params.size() != replica_params_.front().size())
        throw ValueError("DataParallel: the model has " + std::to_string(params.size()) +
                         " parameters now and its replicas " + std::to_string(replica_params_.front().size()));
    struct Piece {
        std::size_t param;
        std::int64_t begin, end;
    };
    std::vector<Array> totals(params.size());
    std::vector<Piece> pieces;
    constexpr std::int64_t kPiece = 1 << 14;  // elements per task
    for (std::size_t i = 0; i < params.size(); ++i) {
        Tensor g0;  // the first group's gradient that is defined gives the shape
        for (std::int64_t g = 0; g < groups && !g0.defined(); ++g) g0 = replica_params_[g][i].grad();
        if (!g0.defined()) continue;
        totals[i] = Array(g0.shape(), g0.dtype());
        for (std::int64_t b = 0; b < g0.numel(); b += kPiece)
            pieces.push_back({i, b, std::min(b + kPiece, g0.numel())});
    }
    tbb::parallel_for(std::size_t(0), pieces.size(), [&](std::size_t t) {
        const Piece& piece = pieces[t];
        Array& total = totals[piece.param];
        detail::dispatch_floating(total.dtype(), "DataParallel", [&]<class T>() {
            T* out = total.template data<T>() + piece.begin;
            const std::int64_t len = piece.end - piece.begin;
            bool first = true;
            for (std::int64_t g = 0; g < groups; ++g) {
                const Tensor grad = replica_params_[g][piece.param].grad();
                if (!grad.defined()) continue;
                const T* src = grad.array().template data<T>() + piece.begin;
                if (first)
                    std::copy(src, src + len, out);
                else
                    for (std::int64_t j = 0; j < len; ++j) out[j] += src[j];
                first = false;
            }
        });
    });
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (!totals[i].defined()) continue;
        Tensor p = params[i];
        Tensor t(std::move(totals[i]));
        p.set_grad(p.grad().defined() ? p.grad() + t : t);
    }
    if (inputs.requires_grad()) pass_on_row_gradients(inputs, input_rows);
    if (targets.requires_grad()) pass_on_row_gradients(targets, target_rows);
    return mean_loss;
}

}  // namespace xg::nn

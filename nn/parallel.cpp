#include "parallel.hpp"

#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

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

// Sends sum_k weight_k * grad(rows_k) into `batch` (into its graph, or its .grad for a leaf), with
// rows_k the shard leaves of shard_rows. Shards whose loss did not reach their rows contribute zeros.
void pass_on_row_gradients(const Tensor& batch, const std::vector<Tensor>& rows, const std::vector<double>& weights) {
    NoGradGuard no_grad;
    std::vector<Tensor> parts;
    bool any = false;
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const Tensor g = rows[k].grad();
        any |= g.defined();
        parts.push_back(g.defined() ? g * weights[k] : zeros_like(rows[k]));
    }
    if (any) batch.backward(parts.size() == 1 ? parts[0] : concat(parts, 0));
}
}  // namespace

DataParallel::DataParallel(std::shared_ptr<Module> model, const std::function<std::shared_ptr<Module>()>& make_replica,
                           int shards)
    : model_(std::move(model)) {
    if (!model_) throw ValueError("DataParallel: the model is null");
    if (shards < 1) throw ValueError("DataParallel: shards must be >= 1, got " + std::to_string(shards));
    for (int k = 0; k < shards; ++k) {
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
    const auto k_count = static_cast<std::int64_t>(replicas_.size());
    const std::int64_t used = std::min<std::int64_t>(k_count, n);
    std::vector<double> losses(static_cast<std::size_t>(used));
    auto bounds = [&](std::int64_t k) { return std::pair{n * k / used, n * (k + 1) / used}; };
    std::vector<Tensor> input_rows(static_cast<std::size_t>(used)), target_rows(static_cast<std::size_t>(used));
    tbb::parallel_for(
        std::int64_t(0), used,
        [&](std::int64_t k) {
            EnableGradGuard grad_on;  // grad mode is thread-local: TBB workers start with the default
            Module& replica = *replicas_[k];
            if (replica.is_training() != model_->is_training()) replica.train(model_->is_training());
            for (Tensor& p : replica_params_[k]) p.zero_grad();
            const auto [b, e] = bounds(k);
            const Tensor x = shard_rows(inputs, b, e), y = shard_rows(targets, b, e);
            // Kept past the task only when their gradients are needed: blocks freed on another
            // thread go to that thread's pool.
            if (x.requires_grad()) input_rows[k] = x;
            if (y.requires_grad()) target_rows[k] = y;
            Tensor l = loss(replica(x), y);
            l.backward();
            losses[k] = l.item<double>();
        },
        affinity_);
    // Fixed-order combination: the master's gradient is the sample-weighted mean of the shards',
    // total[j] = sum_k (n_k / N) grad_k[j], summed in shard order for every element. The work is
    // cut into pieces of parameters, in parallel tasks (with many small shards, one op per shard
    // and parameter on this thread alone cost more than the shards' graphs).
    const std::vector<Tensor> params = model_->parameters();
    if (params.size() != replica_params_.front().size())
        throw ValueError("DataParallel: the model has " + std::to_string(params.size()) +
                         " parameters now and its replicas " + std::to_string(replica_params_.front().size()));
    double mean_loss = 0;
    std::vector<double> weights(static_cast<std::size_t>(used));
    for (std::int64_t k = 0; k < used; ++k) {
        const auto [b, e] = bounds(k);
        weights[k] = static_cast<double>(e - b) / static_cast<double>(n);
        mean_loss += losses[k] * weights[k];
    }
    struct Piece {
        std::size_t param;
        std::int64_t begin, end;
    };
    std::vector<Array> totals(params.size());
    std::vector<Piece> pieces;
    constexpr std::int64_t kPiece = 1 << 14;  // elements per task
    for (std::size_t i = 0; i < params.size(); ++i) {
        Tensor g0;  // the first shard's gradient that is defined gives the shape
        for (std::int64_t k = 0; k < used && !g0.defined(); ++k) g0 = replica_params_[k][i].grad();
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
            for (std::int64_t k = 0; k < used; ++k) {
                const Tensor g = replica_params_[k][piece.param].grad();
                if (!g.defined()) continue;
                const T w = static_cast<T>(weights[k]);
                const T* src = g.array().template data<T>() + piece.begin;
                if (first)
                    for (std::int64_t j = 0; j < len; ++j) out[j] = w * src[j];
                else
                    for (std::int64_t j = 0; j < len; ++j) out[j] += w * src[j];
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
    if (inputs.requires_grad()) pass_on_row_gradients(inputs, input_rows, weights);
    if (targets.requires_grad()) pass_on_row_gradients(targets, target_rows, weights);
    return mean_loss;
}

}  // namespace xg::nn

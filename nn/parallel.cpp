#include "parallel.hpp"

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

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
// Summed on the calling thread up to this many element additions (group gradients x elements).
constexpr std::int64_t kSerialCombine = std::int64_t(1) << 18;

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
    replica_busy_ = std::make_unique<std::atomic<bool>[]>(replicas_.size());
    retired_.resize(replicas_.size());
    retired_step_.resize(replicas_.size());
}

std::size_t DataParallel::acquire_replica() {
    // Running tasks have distinct thread slots, so while there are at least as many replicas as
    // threads each thread keeps its own replica from step to step. Otherwise (or for a task nested
    // in another on the same thread) the scan finds a free one: at most `groups` tasks hold a
    // replica at a time, and there are at least that many replicas.
    const int slot = tbb::this_task_arena::current_thread_index();
    const std::size_t n = replicas_.size();
    const std::size_t first = slot >= 0 ? static_cast<std::size_t>(slot) % n : 0;
    for (std::size_t i = 0;; ++i) {
        const std::size_t r = (first + i) % n;
        bool expected = false;
        if (replica_busy_[r].compare_exchange_strong(expected, true, std::memory_order_acquire)) return r;
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
    std::vector<std::vector<Tensor>> group_grads(static_cast<std::size_t>(groups));
    const std::uint64_t step = ++step_;
    // One task per group of consecutive shards, on a free replica: each shard's loss is
    // back-propagated with weight n_k / N, so the replica's gradients add up, in shard order, to
    // the group's part of the mean-loss gradient, which the task then takes out of the replica.
    // Only the group sums are combined below.
    tbb::parallel_for(std::int64_t(0), groups, [&](std::int64_t g) {
        const std::size_t r = acquire_replica();
        struct Release {
            std::atomic<bool>& busy;
            ~Release() { busy.store(false, std::memory_order_release); }
        } release{replica_busy_[r]};
        EnableGradGuard grad_on;  // grad mode is thread-local: TBB workers start with the default
        Module& replica = *replicas_[r];
        if (replica.is_training() != model_->is_training()) replica.train(model_->is_training());
        for (Tensor& p : replica_params_[r]) p.zero_grad();
        if (retired_step_[r] != step) {
            retired_[r].clear();
            retired_step_[r] = step;
        }
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
        auto& grads = group_grads[static_cast<std::size_t>(g)];
        for (Tensor& p : replica_params_[r]) {
            grads.push_back(p.grad());
            retired_[r].push_back(p.grad());
            p.zero_grad();
        }
    });
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
    std::int64_t work = 0;
    for (std::size_t i = 0; i < params.size(); ++i) {
        Tensor g0;  // the first group's gradient that is defined gives the shape
        for (std::int64_t g = 0; g < groups && !g0.defined(); ++g) g0 = group_grads[g][i];
        if (!g0.defined()) continue;
        totals[i] = Array(g0.shape(), g0.dtype());
        work += g0.numel() * groups;
        for (std::int64_t b = 0; b < g0.numel(); b += kPiece)
            pieces.push_back({i, b, std::min(b + kPiece, g0.numel())});
    }
    auto plus = [](auto a, auto b) { return a + b; };
    auto combine = [&](std::size_t t) {
        const Piece& piece = pieces[t];
        Array& total = totals[piece.param];
        detail::dispatch_floating(total.dtype(), "DataParallel", [&]<class T>() {
            T* out = total.template data<T>() + piece.begin;
            const std::int64_t len = piece.end - piece.begin;
            bool first = true;
            for (std::int64_t g = 0; g < groups; ++g) {
                const Tensor& grad = group_grads[g][piece.param];
                if (!grad.defined()) continue;
                const T* src = grad.array().template data<T>() + piece.begin;
                if (first)
                    std::copy(src, src + len, out);
                else
                    detail::simd_map2(out, src, out, len, plus);
                first = false;
            }
        });
    };
    // A small model's sum takes a few microseconds: tasks would cost more than they save, and the
    // totals, summed on this thread, are in its cache for the optimizer's step.
    if (work <= kSerialCombine)
        for (std::size_t t = 0; t < pieces.size(); ++t) combine(t);
    else
        tbb::parallel_for(std::size_t(0), pieces.size(), combine);
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

// nn/: data-parallel training steps with TBB: the batch is split into shards whose graphs are
// built and back-propagated in parallel tasks, and the gradients are combined in a fixed order.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "module.hpp"

namespace xg::nn {

/// Loss of one shard: model output and targets to a scalar (mean over the shard's samples).
using ShardLoss = std::function<Tensor(const Tensor& output, const Tensor& target)>;

/// Runs forward + backward of a batch as `shards` independent graphs, in parallel TBB tasks.
///
/// The shards are cut into at most kGroups groups of consecutive shards. Each group is one task
/// on a replica of the model whose parameters share the master's buffers (no copies; an optimizer
/// stepping the master updates every replica). A task takes the replica its thread used last, so a
/// replica's graphs and buffers stay in one core's cache (on this 2-core machine a cache line that
/// moves between cores costs ~250 ns). The task back-propagates each of its shards' losses
/// weighted by n_k / N into the replica's gradients, in shard order, and keeps them as the group's
/// gradients; the master's gradient is then the sum of the groups' gradients, added in group
/// order. Shard and group boundaries depend only on the batch size and `shards`, never on the
/// thread count, so the result is bit-identical at any number of threads. It equals the
/// single-graph gradient of the mean loss up to rounding.
/// Inputs or targets that require grad receive the gradient of the mean loss too: each shard reads
/// its rows through a leaf of its own (concurrent passes must share no graph node), and the rows'
/// gradients are sent into the batch's graph after the shards. For the same reason the loss must
/// not use tensors that require grad other than its two arguments. Layers whose forward depends on
/// the whole batch (BatchNorm's batch statistics) see per-shard statistics, and Dropout draws its
/// masks in task order: use it with models free of both for reproducible runs.
class DataParallel {
public:
    /// make_replica builds a model of the same architecture as `model` (its initial values do not
    /// matter: the replica's parameters are re-pointed at the master's buffers).
    DataParallel(std::shared_ptr<Module> model, const std::function<std::shared_ptr<Module>()>& make_replica,
                 int shards = 4);
    /// Forward + backward of loss(model(inputs), targets) over the shards; the master's parameters
    /// receive the gradient of the mean loss (accumulated onto any gradient they already hold).
    /// Returns the mean loss.
    double forward_backward(const Tensor& inputs, const Tensor& targets, const ShardLoss& loss);
    /// Number of shards.
    int shards() const { return shards_; }
    /// Shards run in at most this many groups of consecutive shards, one task and one replica each.
    static constexpr int kGroups = 16;

private:
    /// A replica no other task is using, preferably the one of the calling thread's slot.
    std::size_t acquire_replica();

    std::shared_ptr<Module> model_;
    int shards_;
    std::vector<std::shared_ptr<Module>> replicas_;
    std::vector<std::vector<Tensor>> replica_params_;  // each replica's parameters, in parameters() order
    std::unique_ptr<std::atomic<bool>[]> replica_busy_;
    // The group gradients each replica produced in the last step. They are dropped when the
    // replica is first used in the next step, so that their buffers return to the pool of the
    // thread that allocated them (dropped on the calling thread, they would pile up in its pool
    // while the other threads allocated fresh ones).
    std::vector<std::vector<Tensor>> retired_;
    std::vector<std::uint64_t> retired_step_;
    std::uint64_t step_ = 0;
};

}  // namespace xg::nn

// nn/: activation statistics. A monitor hooks the forward of chosen layers and records, per layer,
// the mean and standard deviation of its output, the fraction of exact zeros (dead ReLUs), the
// fraction of saturated units (|f'(x)| < 1e-3, for Activation layers) and the norm of the gradient
// flowing back into the output.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "module.hpp"

namespace xg::nn {

/// Accumulated statistics of one layer's output.
struct LayerStats {
    std::string name, type;
    std::int64_t count = 0;       ///< values seen
    double sum = 0, sum_sq = 0;   ///< of the values
    std::int64_t zeros = 0;       ///< values exactly 0
    bool has_derivative = false;  ///< saturation is known (Activation layers)
    std::int64_t saturated = 0;   ///< values where |f'(x)| < 1e-3
    double grad_norm_sum = 0;     ///< sum over recorded backward passes of ||dL/dy||_2
    std::int64_t grad_count = 0;
    double mean() const;
    double std() const;
    double zero_fraction() const;
    double saturated_fraction() const;  ///< NaN when unknown
    double grad_norm() const;           ///< mean over recorded batches; NaN when none
};

/// Records activation statistics of the layers it is attached to while enabled.
class ActivationMonitor {
public:
    ActivationMonitor() = default;
    ~ActivationMonitor();
    ActivationMonitor(const ActivationMonitor&) = delete;
    ActivationMonitor& operator=(const ActivationMonitor&) = delete;

    /// Records `module` under `name`.
    void attach(std::shared_ptr<Module> module, const std::string& name);
    /// Attaches every submodule of root whose type is in `types` (default: Activation layers only).
    void attach_all(const Module& root, const std::vector<std::string>& types = {"Activation"});
    /// Removes every hook.
    void detach();
    /// Recording on or off (on after construction).
    void enable(bool on = true) { state_->enabled = on; }
    bool enabled() const { return state_->enabled; }
    /// Clears the accumulated numbers.
    void reset();
    /// Statistics per attached layer, in attach order.
    std::vector<LayerStats> stats() const;
    /// A table: layer, type, mean, std, zeros %, saturated %, gradient norm.
    std::string report() const;

private:
    struct State {
        bool enabled = true;
        std::vector<LayerStats> layers;
    };
    std::shared_ptr<State> state_ = std::make_shared<State>();
    std::vector<std::pair<std::shared_ptr<Module>, std::size_t>> hooks_;
};

}  // namespace xg::nn

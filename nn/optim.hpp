// nn/: optimizers (PyTorch's documented update rules), gradient clipping and learning-rate
// schedulers. Updates run in place under no-grad; gradients are never modified in place (the engine
// may share one gradient buffer between several tensors). SGD and Adam/AdamW update each parameter in
// one parallel pass over parameter, gradient and state (the tensor-op formulas, element by element).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "module.hpp"

namespace xg::nn {

/// Parameters that share hyper-parameters. Unset lr / weight_decay take the optimizer's defaults.
struct ParamGroup {
    std::vector<Tensor> params;
    std::optional<double> lr;
    std::optional<double> weight_decay;
};

/// An optimizer's state for saving: tensors named "state.<i>.<buffer>" (i counts parameters over all
/// groups in order) and string metadata (type, per-parameter step counts, per-group lr).
struct OptimizerState {
    StateDict tensors;
    std::map<std::string, std::string> metadata;
};

/// Base of the optimizers: parameter groups and per-parameter state.
class Optimizer {
public:
    virtual ~Optimizer() = default;
    Optimizer(const Optimizer&) = delete;
    Optimizer& operator=(const Optimizer&) = delete;

    /// One update of every parameter that has a gradient.
    virtual void step() = 0;
    /// Clears every parameter's gradient.
    void zero_grad();
    /// Optimizer name ("SGD", "Adam" ...).
    const std::string& name() const { return name_; }
    /// The groups; lr and weight_decay are always set here (defaults filled in) and may be changed.
    std::vector<ParamGroup>& param_groups() { return groups_; }
    const std::vector<ParamGroup>& param_groups() const { return groups_; }
    /// Sets the learning rate of every group.
    void set_lr(double lr);

    /// State for saving (see OptimizerState).
    OptimizerState state_dict() const;
    /// Restores state saved by an optimizer of the same type over parameters of the same shapes; throws
    /// ValueError naming what does not match (nothing is modified then).
    void load_state_dict(const OptimizerState& state);

protected:
    Optimizer(std::string name, std::vector<ParamGroup> groups, double lr, double weight_decay);
    /// Per-parameter state: named buffers and the number of steps taken.
    struct ParamState {
        std::map<std::string, Tensor> buffers;
        std::int64_t step = 0;
    };
    /// State of the i-th parameter (flat index over all groups).
    ParamState& state(std::size_t i) { return state_[i]; }
    /// Calls f(group, param, flat_index) for every parameter that has a gradient.
    template <class F>
    void for_each_param(F&& f) {
        std::size_t i = 0;
        for (auto& g : groups_)
            for (auto& p : g.params) {
                if (p.grad().defined()) f(g, p, i);
                ++i;
            }
    }

private:
    std::string name_;
    std::vector<ParamGroup> groups_;
    std::vector<ParamState> state_;
};

/// Options of SGD.
struct SGDOptions {
    double lr = 0.01;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};
/// g = grad + wd p; with momentum: b = g on the first step, else b = mu b + (1 - dampening) g;
/// g = nesterov ? g + mu b : b; p -= lr g.
class SGD : public Optimizer {
public:
    SGD(std::vector<Tensor> params, SGDOptions options = {});
    SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
    void step() override;
    SGDOptions options;
};

/// Options of Adam and AdamW.
struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
};
/// g = grad + wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps).
class Adam : public Optimizer {
public:
    Adam(std::vector<Tensor> params, AdamOptions options = {});
    Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
    void step() override;
    AdamOptions options;

protected:
    Adam(std::string name, std::vector<ParamGroup> groups, AdamOptions options);
    void adam_step(bool decoupled);
};

/// Adam with decoupled weight decay: p -= lr wd p first, then the Adam step on the plain gradient.
/// Default weight_decay 0.01 (PyTorch's).
class AdamW : public Adam {
public:
    AdamW(std::vector<Tensor> params, AdamOptions options = adamw_defaults());
    AdamW(std::vector<ParamGroup> groups, AdamOptions options = adamw_defaults());
    void step() override;
    /// AdamOptions with weight_decay = 0.01.
    static AdamOptions adamw_defaults() {
        AdamOptions o;
        o.weight_decay = 0.01;
        return o;
    }
};

/// Options of RMSprop.
struct RMSpropOptions {
    double lr = 0.01;
    double alpha = 0.99;
    double eps = 1e-8;
    double weight_decay = 0.0;
    double momentum = 0.0;
    bool centered = false;
};
/// g = grad + wd p; v = a v + (1-a) g^2; centered: gm = a gm + (1-a) g, v~ = v - gm^2 (else v~ = v);
/// momentum: b = mu b + g / (sqrt(v~) + eps), p -= lr b; else p -= lr g / (sqrt(v~) + eps).
class RMSprop : public Optimizer {
public:
    RMSprop(std::vector<Tensor> params, RMSpropOptions options = {});
    RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});
    void step() override;
    RMSpropOptions options;
};

/// Options of Adagrad.
struct AdagradOptions {
    double lr = 0.01;
    double lr_decay = 0.0;
    double weight_decay = 0.0;
    double initial_accumulator_value = 0.0;
    double eps = 1e-10;
};
/// lr_t = lr / (1 + (t-1) lr_decay); g = grad + wd p; s += g^2; p -= lr_t g / (sqrt(s) + eps).
class Adagrad : public Optimizer {
public:
    Adagrad(std::vector<Tensor> params, AdagradOptions options = {});
    Adagrad(std::vector<ParamGroup> groups, AdagradOptions options = {});
    void step() override;
    AdagradOptions options;
};

/// Builds an optimizer by name ("sgd", "adam", "adamw", "rmsprop", "adagrad"); SGD gets momentum 0.9.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Tensor> params, double lr);

/// Scales all gradients by max_norm / (total_norm + 1e-6) when their joint norm (norm_type 2, 1 or inf)
/// exceeds max_norm; returns the total norm before clipping.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0);
/// Clamps every gradient element to [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

/// Base of the learning-rate schedulers: lr of each group at step t (t = 0 at construction, which
/// already sets the lr) as a closed-form function of the group's initial lr.
class LRScheduler {
public:
    explicit LRScheduler(Optimizer& optimizer);
    virtual ~LRScheduler() = default;
    /// Advances t by one and sets the learning rates.
    void step();
    /// Jumps to step t (for resuming) and sets the learning rates.
    void set_step(std::int64_t t);
    std::int64_t last_step() const { return t_; }
    /// The learning rates last set.
    std::vector<double> get_last_lr() const;
    /// lr at step t for a group whose initial lr is base.
    virtual double lr_at(double base, std::int64_t t) const = 0;

protected:
    /// Sets the lrs for the current t (subclass constructors call it once).
    void apply();

private:
    Optimizer& opt_;
    std::vector<double> base_;
    std::int64_t t_ = 0;
};

/// lr = base gamma^floor(t / step_size).
class StepLR : public LRScheduler {
public:
    StepLR(Optimizer& opt, std::int64_t step_size, double gamma = 0.1);
    double lr_at(double base, std::int64_t t) const override;
    std::int64_t step_size;
    double gamma;
};

/// lr = base gamma^(number of milestones <= t).
class MultiStepLR : public LRScheduler {
public:
    MultiStepLR(Optimizer& opt, std::vector<std::int64_t> milestones, double gamma = 0.1);
    double lr_at(double base, std::int64_t t) const override;
    std::vector<std::int64_t> milestones;
    double gamma;
};

/// lr = base gamma^t.
class ExponentialLR : public LRScheduler {
public:
    ExponentialLR(Optimizer& opt, double gamma);
    double lr_at(double base, std::int64_t t) const override;
    double gamma;
};

/// lr = eta_min + (base - eta_min) (1 + cos(pi t / t_max)) / 2.
class CosineAnnealingLR : public LRScheduler {
public:
    CosineAnnealingLR(Optimizer& opt, std::int64_t t_max, double eta_min = 0.0);
    double lr_at(double base, std::int64_t t) const override;
    std::int64_t t_max;
    double eta_min;
};

/// Linear warm-up: lr = base (start + (1 - start) t / warmup) for t < warmup; afterwards base, or the
/// `after` schedule run from step t - warmup (e.g. warm-up then cosine).
class LinearWarmupLR : public LRScheduler {
public:
    LinearWarmupLR(Optimizer& opt, std::int64_t warmup_steps, double start_factor = 1.0 / 3.0,
                   std::shared_ptr<LRScheduler> after = nullptr);
    double lr_at(double base, std::int64_t t) const override;
    std::int64_t warmup_steps;
    double start_factor;
    std::shared_ptr<LRScheduler> after;
};

}  // namespace xg::nn

#include "optim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>

#include "../engine/error.hpp"
#include "../engine/kernels.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/math.hpp"
#include "../ops/reduction.hpp"

namespace xg::nn {

namespace {
std::string num_str(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

double parse_double(const std::string& s, const std::string& what) {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size())
        throw ValueError("load_state_dict: bad number '" + s + "' for " + what);
    return v;
}

std::int64_t parse_int(const std::string& s, const std::string& what) {
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || end != s.c_str() + s.size() || v < 0)
        throw ValueError("load_state_dict: bad count '" + s + "' for " + what);
    return v;
}

std::vector<ParamGroup> single_group(std::vector<Tensor> params) { return {ParamGroup{std::move(params), {}, {}}}; }

// A copy of t with its own buffer.
Tensor clone(const Tensor& t) {
    Tensor c = zeros_like(t);
    c.copy_(t);
    return c;
}

Tensor& buffer(std::map<std::string, Tensor>& buffers, const std::string& name, const Tensor& like, double init) {
    auto it = buffers.find(name);
    if (it == buffers.end()) it = buffers.emplace(name, full_like(like, init)).first;
    return it->second;
}

// --- fused updates: each parameter in one parallel pass over param, grad and state (no temporaries) --
// The arithmetic is the tensor-op formula's, element by element, in the parameter's dtype.

// The writable buffer of t (an optimizer's own tensor or a parameter, under no-grad), version bumped.
Array& written(Tensor& t) {
    Array& a = t.impl()->value;
    a.bump_version();
    return a;
}

// The gradient of p in p's dtype.
Array grad_of(const Tensor& p) { return p.grad().array().to(p.dtype()); }

// Element loads and stores for f written once for xsimd batches (V = batch) and scalars (the tail).
template <class V, class T>
V load(const T* p) {
    if constexpr (std::is_same_v<V, T>)
        return *p;
    else
        return V::load_unaligned(p);
}
template <class V, class T>
void store(T* p, const V& v) {
    if constexpr (std::is_same_v<V, T>)
        *p = v;
    else
        v.store_unaligned(p);
}

// Runs step.template operator()<V>(i) over [b, e): V = xsimd::batch<T> at i, i + W, ... and V = T for
// the tail; the same IEEE operations either way.
template <class T, class S>
void simd_loop(std::int64_t b, std::int64_t e, const S& step) {
    constexpr std::int64_t W = xsimd::batch<T>::size;
    std::int64_t i = b;
    for (; i + W <= e; i += W) step.template operator()<xsimd::batch<T>>(i);
    for (; i < e; ++i) step.template operator()<T>(i);
}

// NOTE: the chunk kernels take every pointer and constant as a parameter: read through the captures
// of the parallel_for closure, they were reloaded after each vector store (the stores may alias
// anything), which made the one-pass SGD no faster than three tensor ops.
template <class T>
void sgd_chunk(std::int64_t b, std::int64_t e, T* pp, const T* pg, T* pb, T wd, T lr, T mu, T damp, bool has_wd,
               bool first, bool nesterov) {
    simd_loop<T>(b, e, [=]<class V>(std::int64_t i) {
        const V pi = load<V>(pp + i);
        V d = load<V>(pg + i);
        if (has_wd) d = d + pi * wd;
        if (pb) {
            const V m = first ? d : V(load<V>(pb + i) * mu + damp * d);
            store(pb + i, m);
            d = nesterov ? V(d + m * mu) : m;
        }
        store(pp + i, V(pi - lr * d));
    });
}

template <class T>
void adam_chunk(std::int64_t b, std::int64_t e, T* pp, T* pm, T* pv, const T* pg, T b1, T b2, T c1, T c2, T eps,
                T inv_sqrt_bc2, T step, T decay, T wd, bool has_wd, bool decoupled) {
    simd_loop<T>(b, e, [=]<class V>(std::int64_t i) {
        V d = load<V>(pg + i);
        V pi = load<V>(pp + i);
        if (has_wd) {
            if (decoupled)
                pi = pi * decay;
            else
                d = d + pi * wd;
        }
        const V mi = load<V>(pm + i) * b1 + c1 * d;
        const V vi = load<V>(pv + i) * b2 + c2 * (d * d);
        store(pm + i, mi);
        store(pv + i, vi);
        V root;
        if constexpr (std::is_same_v<V, T>)
            root = std::sqrt(vi);
        else
            root = xsimd::sqrt(vi);
        store(pp + i, V(pi - step * (mi / (root * inv_sqrt_bc2 + eps))));
    });
}

template <class T, class F>
void chunks(std::int64_t n, F f) {
    detail::parallel_for(n, detail::scaled_grain<T>(detail::kGrainCheap), f);
}

// SGD: d = g + wd p; b = d (first step) or mu b + (1 - dampening) d; d = nesterov ? d + mu b : b; p -= lr d.
void sgd_update(Tensor& p, Tensor* momentum_buffer, bool first, double lr, double wd, const SGDOptions& o) {
    const Array g = grad_of(p);
    detail::dispatch_floating(p.dtype(), "SGD", [&]<class T>() {
        T* pp = written(p).data<T>();
        const T* pg = g.data<T>();
        T* pb = momentum_buffer ? written(*momentum_buffer).data<T>() : nullptr;
        const T wd_t = static_cast<T>(wd), lr_t = static_cast<T>(lr), mu = static_cast<T>(o.momentum),
                damp = static_cast<T>(1.0 - o.dampening);
        const bool has_wd = wd != 0, nesterov = o.nesterov;
        chunks<T>(p.numel(), [=](std::int64_t b, std::int64_t e) {
            sgd_chunk<T>(b, e, pp, pg, pb, wd_t, lr_t, mu, damp, has_wd, first, nesterov);
        });
    });
}

// Adam / AdamW: (AdamW: p *= 1 - lr wd; Adam: d = g + wd p); m = b1 m + (1-b1) d; v = b2 v + (1-b2) d^2;
// p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps).
void adam_update(Tensor& p, Tensor& m, Tensor& v, double lr, double wd, bool decoupled, double bc1, double bc2,
                 const AdamOptions& o) {
    const Array g = grad_of(p);
    detail::dispatch_floating(p.dtype(), "Adam", [&]<class T>() {
        T* pp = written(p).data<T>();
        T* pm = written(m).data<T>();
        T* pv = written(v).data<T>();
        const T* pg = g.data<T>();
        const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2), c1 = static_cast<T>(1.0 - o.beta1),
                c2 = static_cast<T>(1.0 - o.beta2), eps = static_cast<T>(o.eps),
                inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2)), step = static_cast<T>(lr / bc1),
                decay = static_cast<T>(1.0 - lr * wd), wd_t = static_cast<T>(wd);
        const bool has_wd = wd != 0;
        chunks<T>(p.numel(), [=](std::int64_t b, std::int64_t e) {
            adam_chunk<T>(b, e, pp, pm, pv, pg, b1, b2, c1, c2, eps, inv_sqrt_bc2, step, decay, wd_t, has_wd,
                          decoupled);
        });
    });
}
}  // namespace

// --- Optimizer ------------------------------------------------------------------------------------
Optimizer::Optimizer(std::string name, std::vector<ParamGroup> groups, double lr, double wd)
    : name_(std::move(name)), groups_(std::move(groups)) {
    if (groups_.empty()) throw ValueError(name_ + ": no parameter groups given");
    std::set<const void*> seen;
    std::size_t n = 0;
    for (auto& g : groups_) {
        if (!g.lr) g.lr = lr;
        if (!g.weight_decay) g.weight_decay = wd;
        if (!(*g.lr >= 0)) throw ValueError(name_ + ": learning rate must be non-negative, got " + num_str(*g.lr));
        if (!(*g.weight_decay >= 0))
            throw ValueError(name_ + ": weight_decay must be non-negative, got " + num_str(*g.weight_decay));
        for (const auto& p : g.params) {
            if (!p.defined() || !p.requires_grad())
                throw ValueError(name_ + ": every parameter must be defined and require grad");
            if (!p.is_leaf()) throw ValueError(name_ + ": parameters must be leaf tensors");
            if (!seen.insert(p.impl().get()).second)
                throw ValueError(name_ + ": a parameter appears more than once in the groups");
            ++n;
        }
    }
    state_.resize(n);
}

void Optimizer::zero_grad() {
    for (auto& g : groups_)
        for (auto& p : g.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
    for (auto& g : groups_) g.lr = lr;
}

OptimizerState Optimizer::state_dict() const {
    OptimizerState s;
    s.metadata["type"] = name_;
    s.metadata["param_count"] = std::to_string(state_.size());
    for (std::size_t g = 0; g < groups_.size(); ++g) {
        s.metadata["group." + std::to_string(g) + ".lr"] = num_str(*groups_[g].lr);
        s.metadata["group." + std::to_string(g) + ".weight_decay"] = num_str(*groups_[g].weight_decay);
    }
    for (std::size_t i = 0; i < state_.size(); ++i) {
        s.metadata["state." + std::to_string(i) + ".step"] = std::to_string(state_[i].step);
        for (const auto& [n, t] : state_[i].buffers) s.tensors.emplace_back("state." + std::to_string(i) + "." + n, t);
    }
    return s;
}

void Optimizer::load_state_dict(const OptimizerState& s) {
    auto get = [&](const std::string& key) -> const std::string& {
        auto it = s.metadata.find(key);
        if (it == s.metadata.end()) throw ValueError("load_state_dict: optimizer state lacks '" + key + "'");
        return it->second;
    };
    if (get("type") != name_)
        throw ValueError("load_state_dict: state of a " + get("type") + " optimizer cannot be loaded into " + name_);
    if (parse_int(get("param_count"), "param_count") != static_cast<std::int64_t>(state_.size()))
        throw ValueError("load_state_dict: state has " + get("param_count") + " parameters, the optimizer " +
                         std::to_string(state_.size()));
    std::vector<const Tensor*> params;
    for (const auto& g : groups_)
        for (const auto& p : g.params) params.push_back(&p);
    std::vector<ParamState> fresh(state_.size());
    for (std::size_t i = 0; i < fresh.size(); ++i)
        fresh[i].step = parse_int(get("state." + std::to_string(i) + ".step"), "a step count");
    for (const auto& [name, t] : s.tensors) {
        // "state.<i>.<buffer>"
        const auto dot = name.find('.', 6);
        if (name.rfind("state.", 0) != 0 || dot == std::string::npos)
            throw ValueError("load_state_dict: unexpected optimizer tensor '" + name + "'");
        const std::int64_t i = parse_int(name.substr(6, dot - 6), name);
        if (i >= static_cast<std::int64_t>(fresh.size()))
            throw ValueError("load_state_dict: optimizer tensor '" + name + "' names a parameter out of range");
        if (!t.defined() || t.shape() != params[i]->shape())
            throw ValueError("load_state_dict: optimizer tensor '" + name + "' has shape " +
                             (t.defined() ? shape_str(t.shape()) : std::string("undefined")) + ", parameter " +
                             std::to_string(i) + " has shape " + shape_str(params[i]->shape()));
        NoGradGuard ng;
        // Own copies: the optimizer updates its state in place.
        fresh[i].buffers[name.substr(dot + 1)] = t.dtype() == params[i]->dtype() ? clone(t) : t.to(params[i]->dtype());
    }
    std::vector<double> lrs, wds;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
        lrs.push_back(parse_double(get("group." + std::to_string(g) + ".lr"), "a group lr"));
        wds.push_back(parse_double(get("group." + std::to_string(g) + ".weight_decay"), "a group weight_decay"));
    }
    for (std::size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lrs[g], groups_[g].weight_decay = wds[g];
    state_ = std::move(fresh);
}

// --- SGD ------------------------------------------------------------------------------------------
SGD::SGD(std::vector<Tensor> params, SGDOptions o) : SGD(single_group(std::move(params)), o) {}
SGD::SGD(std::vector<ParamGroup> groups, SGDOptions o)
    : Optimizer("SGD", std::move(groups), o.lr, o.weight_decay), options(o) {
    if (o.momentum < 0) throw ValueError("SGD: momentum must be non-negative");
    if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
        throw ValueError("SGD: nesterov needs a positive momentum and zero dampening");
}

void SGD::step() {
    NoGradGuard ng;
    for_each_param([&](ParamGroup& g, Tensor& p, std::size_t i) {
        auto& st = state(i);
        Tensor* buf = nullptr;
        bool first = false;
        if (options.momentum != 0) {
            auto it = st.buffers.find("momentum_buffer");
            if ((first = it == st.buffers.end())) it = st.buffers.emplace("momentum_buffer", zeros_like(p)).first;
            buf = &it->second;
        }
        sgd_update(p, buf, first, *g.lr, *g.weight_decay, options);
        ++st.step;
    });
}

// --- Adam / AdamW ---------------------------------------------------------------------------------
Adam::Adam(std::vector<Tensor> params, AdamOptions o) : Adam(single_group(std::move(params)), o) {}
Adam::Adam(std::vector<ParamGroup> groups, AdamOptions o) : Adam("Adam", std::move(groups), o) {}
Adam::Adam(std::string name, std::vector<ParamGroup> groups, AdamOptions o)
    : Optimizer(std::move(name), std::move(groups), o.lr, o.weight_decay), options(o) {
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
        throw ValueError(this->name() + ": betas must be in [0, 1)");
    if (!(o.eps >= 0)) throw ValueError(this->name() + ": eps must be non-negative");
}

void Adam::step() { adam_step(false); }

void Adam::adam_step(bool decoupled) {
    NoGradGuard ng;
    for_each_param([&](ParamGroup& g, Tensor& p, std::size_t i) {
        auto& st = state(i);
        const auto t = static_cast<double>(++st.step);
        Tensor& m = buffer(st.buffers, "exp_avg", p, 0.0);
        Tensor& v = buffer(st.buffers, "exp_avg_sq", p, 0.0);
        const double bc1 = 1.0 - std::pow(options.beta1, t), bc2 = 1.0 - std::pow(options.beta2, t);
        adam_update(p, m, v, *g.lr, *g.weight_decay, decoupled, bc1, bc2, options);
    });
}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions o) : AdamW(single_group(std::move(params)), o) {}
AdamW::AdamW(std::vector<ParamGroup> groups, AdamOptions o) : Adam("AdamW", std::move(groups), o) {}
void AdamW::step() { adam_step(true); }

// --- RMSprop --------------------------------------------------------------------------------------
RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions o) : RMSprop(single_group(std::move(params)), o) {}
RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions o)
    : Optimizer("RMSprop", std::move(groups), o.lr, o.weight_decay), options(o) {
    if (!(o.alpha >= 0 && o.alpha <= 1)) throw ValueError("RMSprop: alpha must be in [0, 1]");
    if (o.momentum < 0 || o.eps < 0) throw ValueError("RMSprop: momentum and eps must be non-negative");
}

void RMSprop::step() {
    NoGradGuard ng;
    const double a = options.alpha;
    for_each_param([&](ParamGroup& g, Tensor& p, std::size_t i) {
        Tensor d = p.grad();
        if (*g.weight_decay != 0) d = d + p * *g.weight_decay;
        auto& st = state(i);
        ++st.step;
        Tensor& sq = buffer(st.buffers, "square_avg", p, 0.0);
        sq.mul_(a).add_(square(d), 1.0 - a);
        Tensor avg;
        if (options.centered) {
            Tensor& gm = buffer(st.buffers, "grad_avg", p, 0.0);
            gm.mul_(a).add_(d, 1.0 - a);
            avg = sqrt(sq - square(gm)) + options.eps;
        } else {
            avg = sqrt(sq) + options.eps;
        }
        if (options.momentum > 0) {
            Tensor& b = buffer(st.buffers, "momentum_buffer", p, 0.0);
            b.mul_(options.momentum).add_(d / avg);
            p.sub_(b, *g.lr);
        } else {
            p.sub_(d / avg, *g.lr);
        }
    });
}

// --- Adagrad --------------------------------------------------------------------------------------
Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions o) : Adagrad(single_group(std::move(params)), o) {}
Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions o)
    : Optimizer("Adagrad", std::move(groups), o.lr, o.weight_decay), options(o) {
    if (o.lr_decay < 0 || o.initial_accumulator_value < 0 || o.eps < 0)
        throw ValueError("Adagrad: lr_decay, initial_accumulator_value and eps must be non-negative");
}

void Adagrad::step() {
    NoGradGuard ng;
    for_each_param([&](ParamGroup& g, Tensor& p, std::size_t i) {
        Tensor d = p.grad();
        if (*g.weight_decay != 0) d = d + p * *g.weight_decay;
        auto& st = state(i);
        const auto t = static_cast<double>(++st.step);
        const double clr = *g.lr / (1.0 + (t - 1.0) * options.lr_decay);
        Tensor& s = buffer(st.buffers, "sum", p, options.initial_accumulator_value);
        s.add_(square(d));
        p.sub_(d / (sqrt(s) + options.eps), clr);
    });
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<Tensor> params, double lr) {
    if (name == "sgd") return std::make_unique<SGD>(std::move(params), SGDOptions{lr, 0.9, 0.0, 0.0, false});
    if (name == "adam") return std::make_unique<Adam>(std::move(params), AdamOptions{lr});
    if (name == "adamw") {
        AdamOptions o = AdamW::adamw_defaults();
        o.lr = lr;
        return std::make_unique<AdamW>(std::move(params), o);
    }
    if (name == "rmsprop") {
        RMSpropOptions o;
        o.lr = lr;
        return std::make_unique<RMSprop>(std::move(params), o);
    }
    if (name == "adagrad") {
        AdagradOptions o;
        o.lr = lr;
        return std::make_unique<Adagrad>(std::move(params), o);
    }
    throw ValueError("make_optimizer: unknown optimizer '" + name + "' (known: sgd, adam, adamw, rmsprop, adagrad)");
}

// --- clipping -------------------------------------------------------------------------------------
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
    if (!(max_norm >= 0)) throw ValueError("clip_grad_norm_: max_norm must be non-negative");
    if (!(norm_type > 0)) throw ValueError("clip_grad_norm_: norm_type must be positive");
    NoGradGuard ng;
    const bool inf_norm = std::isinf(norm_type);
    double total = 0;
    for (const auto& p : params) {
        const Tensor g = p.grad();
        if (!g.defined()) continue;
        const Tensor a = abs(g.to(Dtype::f64));
        if (inf_norm)
            total = std::max(total, g.numel() ? max(a).item<double>() : 0.0);
        else
            total += sum(pow(a, norm_type)).item<double>();
    }
    if (!inf_norm) total = std::pow(total, 1.0 / norm_type);
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0)
        for (const auto& p : params) {
            const Tensor g = p.grad();
            Tensor q = p;
            if (g.defined()) q.set_grad(g * coef);  // a new tensor: never scale a gradient in place
        }
    return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
    if (!(clip_value >= 0)) throw ValueError("clip_grad_value_: clip_value must be non-negative");
    NoGradGuard ng;
    for (const auto& p : params) {
        const Tensor g = p.grad();
        Tensor q = p;
        if (g.defined()) q.set_grad(clamp(g, -clip_value, clip_value));
    }
}

// --- schedulers -----------------------------------------------------------------------------------
LRScheduler::LRScheduler(Optimizer& opt) : opt_(opt) {
    for (const auto& g : opt.param_groups()) base_.push_back(*g.lr);
}

void LRScheduler::apply() {
    auto& groups = opt_.param_groups();
    for (std::size_t i = 0; i < groups.size() && i < base_.size(); ++i) groups[i].lr = lr_at(base_[i], t_);
}

void LRScheduler::step() {
    ++t_;
    apply();
}

void LRScheduler::set_step(std::int64_t t) {
    if (t < 0) throw ValueError("LRScheduler::set_step: step must be non-negative");
    t_ = t;
    apply();
}

std::vector<double> LRScheduler::get_last_lr() const {
    std::vector<double> r;
    for (const auto& g : opt_.param_groups()) r.push_back(*g.lr);
    return r;
}

StepLR::StepLR(Optimizer& opt, std::int64_t s, double g) : LRScheduler(opt), step_size(s), gamma(g) {
    if (s <= 0) throw ValueError("StepLR: step_size must be positive");
    apply();
}
double StepLR::lr_at(double base, std::int64_t t) const {
    return base * std::pow(gamma, static_cast<double>(t / step_size));
}

MultiStepLR::MultiStepLR(Optimizer& opt, std::vector<std::int64_t> m, double g)
    : LRScheduler(opt), milestones(std::move(m)), gamma(g) {
    if (!std::is_sorted(milestones.begin(), milestones.end()))
        throw ValueError("MultiStepLR: milestones must be increasing");
    apply();
}
double MultiStepLR::lr_at(double base, std::int64_t t) const {
    const auto k = std::upper_bound(milestones.begin(), milestones.end(), t) - milestones.begin();
    return base * std::pow(gamma, static_cast<double>(k));
}

ExponentialLR::ExponentialLR(Optimizer& opt, double g) : LRScheduler(opt), gamma(g) { apply(); }
double ExponentialLR::lr_at(double base, std::int64_t t) const {
    return base * std::pow(gamma, static_cast<double>(t));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, std::int64_t tm, double em)
    : LRScheduler(opt), t_max(tm), eta_min(em) {
    if (tm <= 0) throw ValueError("CosineAnnealingLR: t_max must be positive");
    apply();
}
double CosineAnnealingLR::lr_at(double base, std::int64_t t) const {
    return eta_min +
           (base - eta_min) * (1.0 + std::cos(M_PI * static_cast<double>(t) / static_cast<double>(t_max))) / 2.0;
}

LinearWarmupLR::LinearWarmupLR(Optimizer& opt, std::int64_t w, double s, std::shared_ptr<LRScheduler> a)
    : LRScheduler(opt), warmup_steps(w), start_factor(s), after(std::move(a)) {
    if (w < 0) throw ValueError("LinearWarmupLR: warmup_steps must be non-negative");
    if (!(s > 0 && s <= 1)) throw ValueError("LinearWarmupLR: start_factor must be in (0, 1]");
    apply();
}
double LinearWarmupLR::lr_at(double base, std::int64_t t) const {
    if (t < warmup_steps)
        return base *
               (start_factor + (1.0 - start_factor) * static_cast<double>(t) / static_cast<double>(warmup_steps));
    return after ? after->lr_at(base, t - warmup_steps) : base;
}

}  // namespace xg::nn

#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "../autograd/grad.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/math.hpp"
#include "../ops/reduction.hpp"
#include "layers.hpp"

namespace xg::nn {

double LayerStats::mean() const { return count ? sum / static_cast<double>(count) : std::nan(""); }
double LayerStats::std() const {
    if (!count) return std::nan("");
    const double m = mean();
    return std::sqrt(std::max(0.0, sum_sq / static_cast<double>(count) - m * m));
}
double LayerStats::zero_fraction() const {
    return count ? static_cast<double>(zeros) / static_cast<double>(count) : std::nan("");
}
double LayerStats::saturated_fraction() const {
    return count && has_derivative ? static_cast<double>(saturated) / static_cast<double>(count) : std::nan("");
}
double LayerStats::grad_norm() const {
    return grad_count ? grad_norm_sum / static_cast<double>(grad_count) : std::nan("");
}

ActivationMonitor::~ActivationMonitor() { detach(); }

void ActivationMonitor::attach(std::shared_ptr<Module> module, const std::string& name) {
    if (!module) throw ValueError("ActivationMonitor::attach: module is null");
    const std::size_t slot = state_->layers.size();
    const auto* act = dynamic_cast<const Activation*>(module.get());
    state_->layers.push_back(LayerStats{name, act ? act->name() : module->type_name()});
    std::weak_ptr<State> weak = state_;
    const std::size_t id = module->register_forward_hook([weak, slot](Module& m, const Tensor& x, const Tensor& y) {
        auto st = weak.lock();
        if (!st || !st->enabled || !y.defined() || !is_floating(y.dtype())) return;
        LayerStats& ls = st->layers[slot];
        {
            NoGradGuard ng;
            const Tensor v = y.detach().to(Dtype::f64);
            ls.count += v.numel();
            ls.sum += sum(v).item<double>();
            ls.sum_sq += sum(square(v)).item<double>();
            ls.zeros += static_cast<std::int64_t>(sum(eq(v, scalar_like(0.0, v))).item<double>());
        }
        if (auto* act = dynamic_cast<Activation*>(&m); act && x.defined() && is_floating(x.dtype())) {
            // f'(x) elementwise: the gradient of sum(f(x)) for an elementwise f, on a detached copy.
            EnableGradGuard eg;
            Tensor xd = x.detach().to(Dtype::f64).detach();
            xd.requires_grad_(true);
            const Tensor d = grad({sum(act->function()(xd))}, {xd}, {}, false, false, true)[0];
            NoGradGuard ng;
            ls.has_derivative = true;
            if (d.defined())
                ls.saturated += static_cast<std::int64_t>(sum(lt(abs(d), scalar_like(1e-3, d))).item<double>());
            else
                ls.saturated += x.numel();  // f does not depend on x at all
        }
        if (y.requires_grad()) {
            Tensor out = y;
            out.register_hook([weak, slot](const Tensor& g) {
                if (auto s = weak.lock(); s && s->enabled) {
                    NoGradGuard ng;
                    s->layers[slot].grad_norm_sum += std::sqrt(sum(square(g.detach().to(Dtype::f64))).item<double>());
                    s->layers[slot].grad_count += 1;
                }
                return Tensor();
            });
        }
    });
    hooks_.emplace_back(std::move(module), id);
}

void ActivationMonitor::attach_all(const Module& root, const std::vector<std::string>& types) {
    for (const auto& [name, m] : root.named_modules())
        if (std::find(types.begin(), types.end(), m->type_name()) != types.end()) attach(m, name);
}

void ActivationMonitor::detach() {
    for (auto& [m, id] : hooks_) m->remove_forward_hook(id);
    hooks_.clear();
}

void ActivationMonitor::reset() {
    for (auto& l : state_->layers) l = LayerStats{l.name, l.type};
}

std::vector<LayerStats> ActivationMonitor::stats() const { return state_->layers; }

std::string ActivationMonitor::report() const {
    std::string r;
    char line[256];
    std::snprintf(line, sizeof line, "%-14s %-12s %10s %10s %8s %10s %12s\n", "layer", "type", "mean", "std", "zeros",
                  "saturated", "grad norm");
    r += line;
    for (const auto& l : state_->layers) {
        auto pct = [](double f) {
            char b[32];
            if (std::isnan(f)) return std::string("-");
            std::snprintf(b, sizeof b, "%.2f%%", 100.0 * f);
            return std::string(b);
        };
        char gn[32];
        if (std::isnan(l.grad_norm()))
            std::snprintf(gn, sizeof gn, "-");
        else
            std::snprintf(gn, sizeof gn, "%.4g", l.grad_norm());
        std::string type = l.type;
        std::snprintf(line, sizeof line, "%-14s %-12s %10.4f %10.4f %8s %10s %12s\n", l.name.c_str(), type.c_str(),
                      l.mean(), l.std(), pct(l.zero_fraction()).c_str(), pct(l.saturated_fraction()).c_str(), gn);
        r += line;
    }
    return r;
}

}  // namespace xg::nn

#include "gradcheck.hpp"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/reduction.hpp"
#include "grad.hpp"

namespace xg {

namespace {

struct Prepared {
    std::vector<Tensor> inputs;  // float64 leaf copies
    std::vector<std::size_t> diff;  // indices of inputs that require grad
    bool promoted = false;
};

Prepared prepare(const std::vector<Tensor>& inputs) {
    Prepared p;
    for (std::size_t j = 0; j < inputs.size(); ++j) {
        const Tensor& t = inputs[j];
        if (!t.defined()) throw ValueError("gradcheck: input " + std::to_string(j) + " is undefined");
        if (t.dtype() == Dtype::f32) p.promoted = true;
        const bool rg = t.requires_grad();
        Array a = is_floating(t.dtype()) ? t.array().to(Dtype::f64).clone() : t.array();
        p.inputs.emplace_back(std::move(a), rg);
        if (rg) p.diff.push_back(j);
    }
    if (p.diff.empty()) throw ValueError("gradcheck: no input requires grad");
    return p;
}

std::vector<Tensor> evaluate(const GradFunction& fn, const std::vector<Tensor>& xs) {
    std::vector<Tensor> outs = fn(xs);
    for (std::size_t i = 0; i < outs.size(); ++i)
        if (!outs[i].defined()) throw ValueError("gradcheck: output " + std::to_string(i) + " is undefined");
    return outs;
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// J[i][j] as a dense numel(out_i) x numel(in_j) row-major matrix.
using Jacobians = std::vector<std::vector<std::vector<double>>>;

Jacobians analytical(const GradFunction& fn, const Prepared& p) {
    const std::vector<Tensor> outs = evaluate(fn, p.inputs);
    std::vector<Tensor> diff_inputs;
    for (auto j : p.diff) diff_inputs.push_back(p.inputs[j]);
    Jacobians J(outs.size());
    for (std::size_t i = 0; i < outs.size(); ++i) {
        const std::int64_t n_out = outs[i].numel();
        J[i].resize(p.diff.size());
        for (std::size_t jj = 0; jj < p.diff.size(); ++jj)
            J[i][jj].assign(static_cast<std::size_t>(n_out * diff_inputs[jj].numel()), 0.0);
        if (!outs[i].requires_grad() || !is_floating(outs[i].dtype())) continue;
        for (std::int64_t k = 0; k < n_out; ++k) {
            Tensor e = zeros(outs[i].shape(), outs[i].dtype());
            Array ea = e.array();
            if (ea.dtype() == Dtype::f64) ea.data<double>()[k] = 1.0; else ea.data<float>()[k] = 1.0f;
            const auto g = grad({outs[i]}, diff_inputs, {e}, true, false, true);
            for (std::size_t jj = 0; jj < g.size(); ++jj) {
                if (!g[jj].defined()) continue;
                if (g[jj].shape() != diff_inputs[jj].shape())
                    throw ShapeError("gradcheck: gradient of input " + std::to_string(p.diff[jj]) + " has shape " +
                                     shape_str(g[jj].shape()) + ", expected " + shape_str(diff_inputs[jj].shape()));
                const auto v = values(g[jj]);
                std::copy(v.begin(), v.end(), J[i][jj].begin() + k * diff_inputs[jj].numel());
            }
        }
    }
    return J;
}

// Outputs at the current input values, without recording.
std::vector<std::vector<double>> outputs_now(const GradFunction& fn, const std::vector<Tensor>& xs) {
    NoGradGuard ng;
    std::vector<std::vector<double>> r;
    for (const auto& o : evaluate(fn, xs)) r.push_back(values(o));
    return r;
}

double* raw_f64(const Tensor& t) {
    Array a = t.array();
    return a.data<double>();
}

double tolerance(double numerical, const GradcheckOptions& o) { return o.atol + o.rtol * std::fabs(numerical); }

void append_entry(GradcheckResult& r, const GradcheckEntry& e) {
    r.entries.push_back(e);
    if (!e.ok) r.ok = false;
}

}  // namespace

GradcheckResult gradcheck(const GradFunction& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
    GradcheckResult result;
    Prepared p = prepare(inputs);
    result.promoted_from_float32 = p.promoted;
    result.fast_mode = o.fast_mode;
    const double eps = o.eps;

    if (o.fast_mode) {
        // Random projections: compare u^T J v (analytical via one backward) with the directional
        // central difference of u^T f along v.
        manual_seed(o.seed + 12345);
        for (int proj = 0; proj < o.fast_projections; ++proj) {
            const auto outs = evaluate(fn, p.inputs);
            std::vector<Tensor> us, vs, diff_inputs;
            for (const auto& out : outs) us.push_back(randn(out.shape(), Dtype::f64));
            for (auto j : p.diff) {
                vs.push_back(randn(p.inputs[j].shape(), Dtype::f64));
                diff_inputs.push_back(p.inputs[j]);
            }
            double ana = 0;
            for (std::size_t i = 0; i < outs.size(); ++i) {
                if (!outs[i].requires_grad()) continue;
                const auto g = grad({outs[i]}, diff_inputs, {us[i].to(outs[i].dtype())}, true, false, true);
                for (std::size_t jj = 0; jj < g.size(); ++jj)
                    if (g[jj].defined()) ana += sum(g[jj].to(Dtype::f64) * vs[jj]).item<double>();
            }
            auto project = [&](double sign) {
                for (std::size_t jj = 0; jj < p.diff.size(); ++jj) {
                    double* x = raw_f64(p.inputs[p.diff[jj]]);
                    const auto v = values(vs[jj]);
                    for (std::size_t k = 0; k < v.size(); ++k) x[k] += sign * eps * v[k];
                }
            };
            auto dot_u = [&](const std::vector<std::vector<double>>& f) {
                double s = 0;
                for (std::size_t i = 0; i < f.size(); ++i) {
                    const auto u = values(us[i]);
                    for (std::size_t k = 0; k < u.size(); ++k) s += u[k] * f[i][k];
                }
                return s;
            };
            project(+1);
            const double fp = dot_u(outputs_now(fn, p.inputs));
            project(-2);
            const double fm = dot_u(outputs_now(fn, p.inputs));
            project(+1);
            const double num = (fp - fm) / (2 * eps);
            GradcheckEntry e;
            e.worst_index = -1;
            e.analytical = ana;
            e.numerical = num;
            e.abs_error = std::fabs(ana - num);
            e.rel_error = e.abs_error / std::max(std::fabs(num), 1e-300);
            e.ok = e.abs_error <= tolerance(num, o) && std::isfinite(ana) == std::isfinite(num);
            append_entry(result, e);
        }
    } else {
        const Jacobians J = analytical(fn, p);
        const auto base = outputs_now(fn, p.inputs);
        for (std::size_t jj = 0; jj < p.diff.size(); ++jj) {
            const Tensor& x = p.inputs[p.diff[jj]];
            const std::int64_t n_in = x.numel();
            std::vector<GradcheckEntry> entries(base.size());
            std::vector<double> worst_excess(base.size(), -1e300);
            for (std::size_t i = 0; i < base.size(); ++i) {
                entries[i].output = i;
                entries[i].input = p.diff[jj];
                entries[i].input_shape = x.shape();
            }
            double* px = raw_f64(x);
            for (std::int64_t e = 0; e < n_in; ++e) {
                const double saved = px[e];
                px[e] = saved + eps;
                const auto fp = outputs_now(fn, p.inputs);
                px[e] = saved - eps;
                const auto fm = outputs_now(fn, p.inputs);
                px[e] = saved;
                for (std::size_t i = 0; i < base.size(); ++i) {
                    const std::size_t n_out = base[i].size();
                    for (std::size_t k = 0; k < n_out; ++k) {
                        const double num = (fp[i][k] - fm[i][k]) / (2 * eps);
                        const double ana = J[i][jj][k * n_in + e];
                        const double err = std::fabs(ana - num);
                        // NaN/inf must agree exactly (log(-1), 1/0); otherwise the error is compared.
                        const bool same_nonfinite = !std::isfinite(num) && !std::isfinite(ana) &&
                                                    (std::isnan(num) == std::isnan(ana)) && (std::isnan(num) || num == ana);
                        const double excess = same_nonfinite ? -1e300 : (std::isnan(err) ? 1e300 : err - tolerance(num, o));
                        if (excess > worst_excess[i]) {
                            worst_excess[i] = excess;
                            auto& en = entries[i];
                            en.worst_index = e;  // flat input index
                            en.analytical = ana;
                            en.numerical = num;
                            en.abs_error = err;
                            en.rel_error = err / std::max(std::fabs(num), 1e-300);
                            en.ok = excess <= 0;
                        }
                    }
                }
            }
            for (std::size_t i = 0; i < base.size(); ++i) {
                auto& en = entries[i];
                if (!en.ok && en.worst_index >= 0) {
                    // Kink test: one-sided slopes at the worst element differ.
                    const std::int64_t e = en.worst_index;
                    const double saved = px[e];
                    px[e] = saved + eps;
                    const auto fp = outputs_now(fn, p.inputs);
                    px[e] = saved - eps;
                    const auto fm = outputs_now(fn, p.inputs);
                    px[e] = saved;
                    for (std::size_t k = 0; k < base[i].size(); ++k) {
                        const double right = (fp[i][k] - base[i][k]) / eps, left = (base[i][k] - fm[i][k]) / eps;
                        if (std::fabs(right - left) > 1e-2 * (std::fabs(right) + std::fabs(left)) + 1e-3) en.at_kink = true;
                    }
                }
                append_entry(result, en);
            }
        }
    }

    if (o.check_reentrant && !o.fast_mode) {
        const Jacobians a1 = analytical(fn, p), a2 = analytical(fn, p);
        for (std::size_t i = 0; i < a1.size(); ++i)
            for (std::size_t jj = 0; jj < a1[i].size(); ++jj)
                if (a1[i][jj].size() != a2[i][jj].size() ||
                    std::memcmp(a1[i][jj].data(), a2[i][jj].data(), a1[i][jj].size() * sizeof(double)) != 0) {
                    result.ok = false;
                    result.problems.push_back("backward is not reentrant: two runs differ for output " + std::to_string(i) +
                                              " / input " + std::to_string(p.diff[jj]));
                }
    }
    if (o.check_no_grad_inputs) {
        const auto outs = evaluate(fn, p.inputs);
        for (std::size_t i = 0; i < outs.size(); ++i) {
            if (!outs[i].requires_grad()) continue;
            outs[i].backward(ones(outs[i].shape(), outs[i].dtype()), true);
        }
        for (std::size_t j = 0; j < p.inputs.size(); ++j) {
            const bool rg = p.inputs[j].requires_grad();
            if (!rg && p.inputs[j].grad().defined()) {
                result.ok = false;
                result.problems.push_back("input " + std::to_string(j) + " does not require grad but received a gradient");
            }
            if (rg) p.inputs[j].zero_grad();
        }
    }
    return result;
}

GradcheckResult gradgradcheck(const GradFunction& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
    Prepared p = prepare(inputs);
    // Random grad_outputs v become extra inputs: G(x, v) = v^T J(x), built with create_graph.
    const auto outs = evaluate(fn, p.inputs);
    manual_seed(o.seed + 777);
    std::vector<Tensor> all = p.inputs;
    std::vector<std::size_t> v_index;
    for (const auto& out : outs) {
        v_index.push_back(all.size());
        all.push_back(randn(out.shape(), Dtype::f64).requires_grad_());
    }
    const std::size_t n_inputs = p.inputs.size();
    const std::vector<std::size_t> diff = p.diff;
    GradFunction first_derivative = [fn, n_inputs, diff](const std::vector<Tensor>& xs) {
        // The first derivative needs the graph even when the caller evaluates under no-grad.
        EnableGradGuard enable;
        const std::vector<Tensor> in(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(n_inputs));
        const std::vector<Tensor> fo = fn(in);
        std::vector<Tensor> roots, gouts;
        for (std::size_t i = 0; i < fo.size(); ++i)
            if (fo[i].requires_grad()) {
                roots.push_back(fo[i]);
                gouts.push_back(xs[n_inputs + i].to(fo[i].dtype()));
            }
        std::vector<Tensor> wrt;
        for (auto j : diff) wrt.push_back(in[j]);
        std::vector<Tensor> g(diff.size());
        if (!roots.empty()) g = grad(roots, wrt, gouts, true, true, true);
        for (std::size_t k = 0; k < g.size(); ++k)
            if (!g[k].defined()) g[k] = zeros(wrt[k].shape(), Dtype::f64);  // unused input: zero gradient
        return g;
    };
    GradcheckResult r = gradcheck(first_derivative, all, o);
    r.promoted_from_float32 = r.promoted_from_float32 || p.promoted;
    return r;
}

std::string GradcheckResult::report() const {
    std::ostringstream os;
    os << std::setprecision(10);
    os << "gradcheck " << (ok ? "passed" : "FAILED") << (fast_mode ? " (fast mode: random projections)" : "");
    if (promoted_from_float32) os << " [float32 inputs were promoted to float64 for the check]";
    os << "\n";
    for (const auto& e : entries) {
        os << "  " << (e.ok ? "ok  " : "FAIL") << " output " << e.output << " / input " << e.input;
        if (e.worst_index >= 0) {
            // Multi-index of the worst element in the input's shape.
            Shape idx(e.input_shape.size());
            std::int64_t rem = e.worst_index;
            for (std::size_t d = idx.size(); d-- > 0;) {
                idx[d] = e.input_shape[d] ? rem % e.input_shape[d] : 0;
                rem = e.input_shape[d] ? rem / e.input_shape[d] : 0;
            }
            os << ": worst element " << shape_str(idx);
        } else {
            os << ": projection u^T J v";
        }
        os << " analytical " << e.analytical << " numerical " << e.numerical << " abs err " << e.abs_error
           << " rel err " << e.rel_error;
        if (e.at_kink) os << "  WARNING: the worst element sits at a kink (left and right slopes differ)";
        os << "\n";
    }
    for (const auto& p : problems) os << "  FAIL " << p << "\n";
    return os.str();
}

std::ostream& operator<<(std::ostream& os, const GradcheckResult& r) { return os << r.report(); }

}  // namespace xg

#include "gradcheck.hpp"

#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>

#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/reduction.hpp"
#include "grad.hpp"

namespace xg {

namespace {

struct Prepared {
    std::vector<Tensor> inputs;     // float64 leaf copies (integer inputs shared as they are)
    std::vector<std::size_t> diff;  // indices of inputs that require grad
    std::vector<bool> wanted_grad;  // requires_grad of each input when the check started
    bool promoted = false;
};

Prepared prepare(const std::vector<Tensor>& inputs) {
    Prepared p;
    for (std::size_t j = 0; j < inputs.size(); ++j) {
        const Tensor& t = inputs[j];
        if (!t.defined()) throw ValueError("gradcheck: input " + std::to_string(j) + " is undefined");
        const bool rg = t.requires_grad();
        if (t.dtype() == Dtype::f32) p.promoted = true;
        Array a = is_floating(t.dtype()) ? t.array().to(Dtype::f64).clone() : t.array();
        p.inputs.emplace_back(std::move(a), rg);
        p.wanted_grad.push_back(rg);
        if (rg) p.diff.push_back(j);
    }
    if (p.diff.empty()) throw ValueError("gradcheck: no input requires grad");
    return p;
}

std::vector<Tensor> evaluate(const GradFunction& fn, const std::vector<Tensor>& xs) {
    std::vector<Tensor> outs = fn(xs);
    if (outs.empty()) throw ValueError("gradcheck: the function returned no outputs");
    for (std::size_t i = 0; i < outs.size(); ++i)
        if (!outs[i].defined()) throw ValueError("gradcheck: output " + std::to_string(i) + " is undefined");
    return outs;
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Standard normal float64 values from a private generator (the caller's xg::manual_seed stream
// is left alone).
Tensor gaussian(const Shape& shape, std::mt19937_64& rng) {
    std::normal_distribution<double> n;
    std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)));
    for (auto& x : v) x = n(rng);
    return tensor(v, shape, Dtype::f64);
}

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
            std::vector<double> e(static_cast<std::size_t>(n_out), 0.0);
            e[static_cast<std::size_t>(k)] = 1.0;
            const auto g =
                grad({outs[i]}, diff_inputs, {tensor(e, outs[i].shape(), outs[i].dtype())}, true, false, true);
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

double relative(double err, double numerical) {
    if (err == 0) return 0;
    return numerical == 0 ? std::numeric_limits<double>::infinity() : err / std::fabs(numerical);
}

// |analytical - numerical| / tolerance: the element passes at <= 1, and the largest ratio is
// reported as the worst element. NaN/inf must agree exactly (log(-1), 1/0).
double excess(double ana, double num, const GradcheckOptions& o) {
    constexpr double inf = std::numeric_limits<double>::infinity();
    if (!std::isfinite(num) || !std::isfinite(ana)) {
        const bool same = std::isnan(num) ? std::isnan(ana) : num == ana;
        return same ? -1 : inf;
    }
    const double err = std::fabs(ana - num), tol = tolerance(num, o);
    return tol > 0 ? err / tol : (err > 0 ? inf : 0);
}

void append_entry(GradcheckResult& r, const GradcheckEntry& e) {
    r.entries.push_back(e);
    if (!e.ok) r.ok = false;
}

// u^T J v through one backward pass per output.
double projected_analytical(const GradFunction& fn, const Prepared& p, const std::vector<Tensor>& us,
                            const std::vector<Tensor>& vs) {
    const auto outs = evaluate(fn, p.inputs);
    std::vector<Tensor> diff_inputs;
    for (auto j : p.diff) diff_inputs.push_back(p.inputs[j]);
    double ana = 0;
    for (std::size_t i = 0; i < outs.size(); ++i) {
        if (!outs[i].requires_grad() || !is_floating(outs[i].dtype())) continue;
        const auto g = grad({outs[i]}, diff_inputs, {us[i].to(outs[i].dtype())}, true, false, true);
        for (std::size_t jj = 0; jj < g.size(); ++jj)
            if (g[jj].defined()) ana += sum(g[jj].to(Dtype::f64) * vs[jj]).item<double>();
    }
    return ana;
}

void check_fast(const GradFunction& fn, Prepared& p, const GradcheckOptions& o, GradcheckResult& result) {
    // Random projections: u^T J v (analytical, one backward per output) against the directional
    // central difference of u^T f along v: O(1) function evaluations instead of O(numel).
    std::mt19937_64 rng(o.seed + 12345);
    const double eps = o.eps;
    for (int proj = 0; proj < o.fast_projections; ++proj) {
        std::vector<Tensor> us, vs;
        {
            NoGradGuard ng;
            for (const auto& out : evaluate(fn, p.inputs)) us.push_back(gaussian(out.shape(), rng));
        }
        for (auto j : p.diff) vs.push_back(gaussian(p.inputs[j].shape(), rng));
        const double ana = projected_analytical(fn, p, us, vs);
        if (o.check_reentrant && proj == 0) {
            const double again = projected_analytical(fn, p, us, vs);
            if (std::memcmp(&ana, &again, sizeof ana) != 0) {
                result.ok = false;
                result.problems.push_back("backward is not reentrant: two runs give different u^T J v");
            }
        }
        auto shift = [&](double sign) {
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
        const std::vector<Tensor> saved = [&] {
            std::vector<Tensor> c;
            for (auto j : p.diff) c.emplace_back(p.inputs[j].array().clone());
            return c;
        }();
        shift(+1);
        const double fp = dot_u(outputs_now(fn, p.inputs));
        shift(-2);
        const double fm = dot_u(outputs_now(fn, p.inputs));
        for (std::size_t jj = 0; jj < p.diff.size(); ++jj)  // restore exactly
            std::memcpy(raw_f64(p.inputs[p.diff[jj]]), saved[jj].array().raw(),
                        static_cast<std::size_t>(saved[jj].numel()) * sizeof(double));
        const double num = (fp - fm) / (2 * eps);
        GradcheckEntry e;
        e.projection = true;
        e.analytical = ana;
        e.numerical = num;
        e.abs_error = std::fabs(ana - num);
        e.rel_error = relative(e.abs_error, num);
        e.tolerance = tolerance(num, o);
        e.ok = excess(ana, num, o) <= 1;
        append_entry(result, e);
    }
}

void check_dense(const GradFunction& fn, Prepared& p, const GradcheckOptions& o, GradcheckResult& result) {
    const double eps = o.eps;
    const Jacobians J = analytical(fn, p);
    const auto base = outputs_now(fn, p.inputs);
    std::vector<Shape> out_shapes;
    {
        NoGradGuard ng;
        for (const auto& out : evaluate(fn, p.inputs)) out_shapes.push_back(out.shape());
    }
    for (std::size_t jj = 0; jj < p.diff.size(); ++jj) {
        const Tensor& x = p.inputs[p.diff[jj]];
        const std::int64_t n_in = x.numel();
        std::vector<GradcheckEntry> entries(base.size());
        std::vector<double> worst(base.size(), -std::numeric_limits<double>::infinity());
        for (std::size_t i = 0; i < base.size(); ++i) {
            entries[i].output = i;
            entries[i].input = p.diff[jj];
            entries[i].input_shape = x.shape();
            entries[i].output_shape = out_shapes[i];
        }
        double* px = raw_f64(x);
        auto at = [&](std::int64_t e, double value) {
            const double saved = px[e];
            px[e] = value;
            auto r = outputs_now(fn, p.inputs);
            px[e] = saved;
            return r;
        };
        for (std::int64_t e = 0; e < n_in; ++e) {
            const auto fp = at(e, px[e] + eps), fm = at(e, px[e] - eps);
            for (std::size_t i = 0; i < base.size(); ++i) {
                for (std::size_t k = 0; k < base[i].size(); ++k) {
                    const double num = (fp[i][k] - fm[i][k]) / (2 * eps);
                    const double ana = J[i][jj][k * n_in + e];
                    const double ex = excess(ana, num, o);
                    if (ex > worst[i] || entries[i].worst_index < 0) {
                        worst[i] = ex;
                        auto& en = entries[i];
                        en.worst_index = e;
                        en.worst_output_index = static_cast<std::int64_t>(k);
                        en.analytical = ana;
                        en.numerical = num;
                        en.abs_error = std::fabs(ana - num);
                        en.rel_error = relative(en.abs_error, num);
                        en.tolerance = tolerance(num, o);
                        en.ok = ex <= 1;
                    }
                }
            }
        }
        for (std::size_t i = 0; i < base.size(); ++i) {
            auto& en = entries[i];
            if (!en.ok && en.worst_index >= 0) {
                // Kink test at the worst element: one-sided slopes differ, or the central
                // difference moves when eps shrinks (relu at 0, |x| at 0, max at a tie ...).
                const std::int64_t e = en.worst_index;
                const std::size_t k = static_cast<std::size_t>(en.worst_output_index);
                const double x0 = px[e];
                const double right = (at(e, x0 + eps)[i][k] - base[i][k]) / eps;
                const double left = (base[i][k] - at(e, x0 - eps)[i][k]) / eps;
                const double small = (at(e, x0 + eps / 10)[i][k] - at(e, x0 - eps / 10)[i][k]) / (2 * eps / 10);
                const bool sides = std::fabs(right - left) > 1e-2 * (std::fabs(right) + std::fabs(left)) + 1e-3;
                const bool moves = std::fabs(small - en.numerical) > tolerance(en.numerical, o);
                en.at_kink = sides || moves;
            }
            append_entry(result, en);
        }
    }
    if (o.check_reentrant) {
        const Jacobians again = analytical(fn, p);
        for (std::size_t i = 0; i < J.size(); ++i)
            for (std::size_t jj = 0; jj < J[i].size(); ++jj)
                if (J[i][jj].size() != again[i][jj].size() ||
                    std::memcmp(J[i][jj].data(), again[i][jj].data(), J[i][jj].size() * sizeof(double)) != 0) {
                    result.ok = false;
                    result.problems.push_back("backward is not reentrant: two runs differ for output " +
                                              std::to_string(i) + " / input " + std::to_string(p.diff[jj]));
                }
    }
}

}  // namespace

GradcheckResult gradcheck(const GradFunction& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
    GradcheckResult result;
    Prepared p = prepare(inputs);
    result.promoted_from_float32 = p.promoted;
    result.fast_mode = o.fast_mode;
    result.eps = o.eps, result.atol = o.atol, result.rtol = o.rtol;
    EnableGradGuard enable;  // the analytical side needs the graph, also when called under no-grad

    if (o.fast_mode)
        check_fast(fn, p, o, result);
    else
        check_dense(fn, p, o, result);

    if (o.check_no_grad_inputs) {
        // Inputs that did not require grad must not receive one (e.g. a function that switches
        // requires_grad on internally, or a rule that writes .grad itself).
        const auto outs = evaluate(fn, p.inputs);
        for (std::size_t i = 0; i < outs.size(); ++i) {
            if (!outs[i].requires_grad() || !is_floating(outs[i].dtype())) continue;
            outs[i].backward(ones(outs[i].shape(), outs[i].dtype()), true);
        }
        for (std::size_t j = 0; j < p.inputs.size(); ++j) {
            if (!p.wanted_grad[j] && p.inputs[j].grad().defined()) {
                result.ok = false;
                result.problems.push_back("input " + std::to_string(j) +
                                          " does not require grad but received a gradient");
            }
            p.inputs[j].zero_grad();
        }
    }
    return result;
}

GradcheckResult gradgradcheck(const GradFunction& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& o) {
    Prepared p = prepare(inputs);
    EnableGradGuard enable;
    // Random grad_outputs v become extra inputs: G(x, v) = v^T J(x), built with create_graph.
    std::vector<Shape> out_shapes;
    for (const auto& out : evaluate(fn, p.inputs)) out_shapes.push_back(out.shape());
    std::mt19937_64 rng(o.seed + 777);
    std::vector<Tensor> all = p.inputs;
    for (const auto& s : out_shapes) all.push_back(gaussian(s, rng).requires_grad_());
    const std::size_t n_inputs = p.inputs.size();
    const std::vector<std::size_t> diff = p.diff;
    GradFunction first_derivative = [fn, n_inputs, diff](const std::vector<Tensor>& xs) {
        // The first derivative needs the graph even when the caller evaluates under no-grad.
        EnableGradGuard enable;
        const std::vector<Tensor> in(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(n_inputs));
        const std::vector<Tensor> fo = fn(in);
        std::vector<Tensor> roots, gouts;
        for (std::size_t i = 0; i < fo.size(); ++i)
            if (fo[i].requires_grad() && is_floating(fo[i].dtype())) {
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
    auto index_str = [](std::int64_t flat, const Shape& shape) {
        Shape idx(shape.size());
        for (std::size_t d = idx.size(); d-- > 0;) {
            idx[d] = shape[d] ? flat % shape[d] : 0;
            flat = shape[d] ? flat / shape[d] : 0;
        }
        return shape_str(idx);
    };
    std::ostringstream os;
    os << std::setprecision(10);
    os << "gradcheck " << (ok ? "passed" : "FAILED") << " (eps " << eps << ", atol " << atol << ", rtol " << rtol
       << (fast_mode ? "; fast mode: random projections u^T J v" : "") << ")";
    if (promoted_from_float32) os << "\n  note: float32 inputs were promoted to float64 for the check";
    os << "\n";
    for (const auto& e : entries) {
        os << "  " << (e.ok ? "ok  " : "FAIL") << " output " << e.output << " / input " << e.input << ": ";
        if (e.projection)
            os << "projection u^T J v";
        else if (e.worst_index < 0)
            os << "empty (nothing to compare)";
        else
            os << "worst element input" << index_str(e.worst_index, e.input_shape) << " -> output"
               << index_str(e.worst_output_index, e.output_shape);
        os << ", analytical " << e.analytical << " numerical " << e.numerical << ", abs err " << e.abs_error
           << " rel err " << e.rel_error << " (tolerance " << e.tolerance << ")";
        if (e.at_kink)
            os << "\n       WARNING: the worst element sits at a kink (the numerical slope changes with eps): "
                  "the function is not differentiable there";
        os << "\n";
    }
    for (const auto& p : problems) os << "  FAIL " << p << "\n";
    return os.str();
}

std::ostream& operator<<(std::ostream& os, const GradcheckResult& r) { return os << r.report(); }

}  // namespace xg

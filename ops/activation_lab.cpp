#include "activation_lab.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>

#include "../autograd/grad.hpp"
#include "../autograd/gradcheck.hpp"
#include "../engine/error.hpp"
#include "arithmetic.hpp"
#include "factories.hpp"
#include "reduction.hpp"

namespace xg::lab {

namespace {

std::string num(double v, int precision = 6) {
    if (std::isnan(v)) return "nan";
    std::ostringstream os;
    os << std::setprecision(precision) << v;
    return os.str();
}

// f at the points (float64, not recorded).
std::vector<double> eval_f(const ActivationFn& fn, const std::vector<double>& xs, Dtype dtype = Dtype::f64) {
    NoGradGuard ng;
    return fn(tensor(xs, {-1}, dtype)).to_vector<double>();
}

// f, f' and f'' at the points through autograd (the op's own backward and double backward).
std::array<std::vector<double>, 3> eval_derivatives(const ActivationFn& fn, const std::vector<double>& xs,
                                                    Dtype dtype = Dtype::f64) {
    EnableGradGuard eg;
    Tensor x = tensor(xs, {-1}, dtype).requires_grad_();
    const Tensor y = fn(x);
    std::vector<double> d1(xs.size(), 0.0), d2(xs.size(), 0.0);
    if (y.requires_grad()) {
        const Tensor g1 = grad({sum(y)}, {x}, {}, true, true, true)[0];
        if (g1.defined()) {
            d1 = g1.to_vector<double>();
            if (g1.requires_grad()) {
                const Tensor g2 = grad({sum(g1)}, {x}, {}, false, false, true)[0];
                if (g2.defined()) d2 = g2.to_vector<double>();
            }
        }
    }
    return {y.detach().to_vector<double>(), d1, d2};
}

double step_for(double x) {
    double h = 1e-6 * std::max(1.0, std::fabs(x));
    if (x != 0) h = std::min(h, std::fabs(x) / 4);
    return h;
}

// Classifies each point from one-sided slopes at two step sizes: a smooth function's slopes agree
// better as the step shrinks, a kink's differ by the same amount, and a jump's differ more.
using Eval = std::function<std::vector<double>(const std::vector<double>&)>;

std::vector<Kink> point_kinks(const Eval& fn, const std::vector<double>& xs) {
    std::vector<double> pts;
    pts.reserve(xs.size() * 5);
    for (double x : xs) {
        const double h1 = step_for(x), h2 = h1 / 10;
        pts.insert(pts.end(), {x, x + h1, x - h1, x + h2, x - h2});
    }
    const auto f = fn(pts);
    std::vector<Kink> r;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const double x = xs[i], h1 = step_for(x), h2 = h1 / 10;
        const double f0 = f[5 * i], fp1 = f[5 * i + 1], fm1 = f[5 * i + 2], fp2 = f[5 * i + 3], fm2 = f[5 * i + 4];
        if (!std::isfinite(f0) || !std::isfinite(fp1) || !std::isfinite(fm1) || !std::isfinite(fp2) || !std::isfinite(fm2))
            continue;
        const double r1 = (fp1 - f0) / h1, l1 = (f0 - fm1) / h1, r2 = (fp2 - f0) / h2, l2 = (f0 - fm2) / h2;
        const double noise = 8 * std::numeric_limits<double>::epsilon() * (std::fabs(f0) + 1) / h2;
        const double tol = 1e-5 * (1 + std::fabs(r1) + std::fabs(l1)) + noise;
        const double d1 = std::fabs(r1 - l1), d2 = std::fabs(r2 - l2);
        const double j1 = std::fabs(fp1 - fm1), j2 = std::fabs(fp2 - fm2);
        Kink k;
        k.x = x;
        k.left = l2;
        k.right = r2;
        if (j2 > 0.5 * j1 && j1 > 1e-9 * (1 + std::fabs(f0))) {
            k.jump = true;
            k.jump_size = fp2 - fm2;
        } else if (d2 > tol && d2 > 3 * d1) {
            k.jump = true;  // a small jump: slopes grow like 1/h
            k.jump_size = (r2 - l2) * h2;
        } else if (d1 > tol && d2 > 0.5 * d1) {
            k.jump = false;
        } else {
            continue;
        }
        r.push_back(k);
    }
    return r;
}

bool near_any(const std::vector<Kink>& ks, double x, double radius) {
    for (const auto& k : ks)
        if (std::fabs(k.x - x) <= radius) return true;
    return false;
}

// A kink strictly between two sweep points: the slope changes more than the curvature between them
// explains. Bisection on secants: with the pure one-sided slopes L (at a) and R (at b), the half whose
// secant departs more from its end's slope holds the kink. The one-sided slopes at the point it
// converges to then tell a kink from a smooth but steep change.
void between_point_kinks(const Eval& fn, const std::vector<double>& xs, std::vector<Kink>& kinks) {
    if (xs.size() < 2) return;
    std::vector<double> pts;
    for (double x : xs) {
        const double h = step_for(x);
        pts.push_back(x + h);
        pts.push_back(x - h);
        pts.push_back(x);
    }
    const auto f = fn(pts);
    std::vector<double> slope(xs.size()), value(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) {
        slope[i] = (f[3 * i] - f[3 * i + 1]) / (2 * step_for(xs[i]));
        value[i] = f[3 * i + 2];
    }
    for (std::size_t i = 0; i + 1 < xs.size(); ++i) {
        const double L = slope[i], R = slope[i + 1];
        const double jump0 = std::fabs(R - L);
        if (!std::isfinite(jump0) || jump0 < 0.05 * (1 + std::fabs(L) + std::fabs(R))) continue;
        if (near_any(kinks, xs[i], 1e-6) || near_any(kinks, xs[i + 1], 1e-6)) continue;
        double a = xs[i], b = xs[i + 1], fa = value[i], fb = value[i + 1];
        if (!std::isfinite(fa) || !std::isfinite(fb)) continue;
        for (int it = 0; it < 60 && b - a > 1e-12 * std::max(1.0, std::fabs(a)); ++it) {
            const double m = 0.5 * (a + b), fm = fn({m})[0];
            const double sl = (fm - fa) / (m - a), sr = (fb - fm) / (b - m);
            if (std::fabs(sl - L) > std::fabs(sr - R))
                b = m, fb = fm;
            else
                a = m, fa = fm;
        }
        const double m = 0.5 * (a + b);
        auto found = point_kinks(fn, {m});
        if (found.empty()) continue;
        if (!near_any(kinks, m, 1e-6)) kinks.push_back(found[0]);
    }
}

std::string fmt_point(double x) { return num(x, 8); }

// Runs gradcheck or gradgradcheck over the points in chunks.
GradcheckSummary chunked_check(const ActivationFn& fn, const std::vector<double>& xs, std::int64_t chunk, bool second) {
    GradcheckSummary s;
    s.ran = true;
    double worst_excess = -1;
    GradFunction f = [fn](const std::vector<Tensor>& in) { return std::vector<Tensor>{fn(in[0])}; };
    for (std::size_t b = 0; b < xs.size(); b += static_cast<std::size_t>(chunk)) {
        const std::size_t e = std::min(xs.size(), b + static_cast<std::size_t>(chunk));
        const std::vector<double> part(xs.begin() + static_cast<std::ptrdiff_t>(b), xs.begin() + static_cast<std::ptrdiff_t>(e));
        Tensor x = tensor(part, {-1}, Dtype::f64).requires_grad_();
        ++s.chunks;
        GradcheckResult r;
        try {
            r = second ? gradgradcheck(f, {x}) : gradcheck(f, {x});
        } catch (const Error& err) {
            ++s.failed_chunks;
            s.ok = false;
            if (worst_excess < 0) s.report = std::string("threw: ") + err.what();
            continue;
        }
        if (r.ok) continue;
        ++s.failed_chunks;
        s.ok = false;
        for (const auto& en : r.entries) {
            if (en.ok || en.worst_index < 0) continue;
            const double excess = en.abs_error / (1e-5 + 1e-3 * std::fabs(en.numerical));
            if (excess <= worst_excess) continue;
            worst_excess = excess;
            // In gradgradcheck the inputs are (x, v): index into x when the block is x's.
            const std::int64_t idx = en.worst_index % static_cast<std::int64_t>(part.size());
            s.worst_x = part[static_cast<std::size_t>(idx)];
            s.analytical = en.analytical;
            s.numerical = en.numerical;
            s.report = r.report();
        }
        if (worst_excess < 0) s.report = r.report();
    }
    return s;
}

std::vector<double> sweep(double lo, double hi, std::int64_t n) {
    std::vector<double> xs;
    if (n < 2) return {lo};
    for (std::int64_t i = 0; i < n; ++i) {
        const double v = lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(n - 1);
        xs.push_back(std::nearbyint(v * 1e9) / 1e9);  // 0.01 * i lands on the decimal (kinks sit there)
    }
    return xs;
}

void non_elementwise_check(CheckReport& r, const ActivationFn& fn) {
    // Softmax-like activations: gradients on a small random batch of rows, well spread.
    manual_seed(1234);
    Tensor x = (randn({3, 6}, Dtype::f64) * 3.0).detach().requires_grad_();
    GradFunction f = [fn](const std::vector<Tensor>& in) { return std::vector<Tensor>{fn(in[0])}; };
    for (bool second : {false, true}) {
        GradcheckSummary s;
        s.ran = true;
        s.chunks = 1;
        const GradcheckResult g = second ? gradgradcheck(f, {x}) : gradcheck(f, {x});
        s.ok = g.ok;
        s.failed_chunks = g.ok ? 0 : 1;
        s.report = g.report();
        (second ? r.gradgrad : r.grad) = s;
    }
    r.points = x.numel();
}

}  // namespace

bool CheckReport::ok() const {
    return (!grad.ran || grad.ok) && (!gradgrad.ran || gradgrad.ok) && nonfinite.empty() &&
           (!compared || max_disagreement <= agreement);
}

std::string CheckReport::text() const {
    std::ostringstream os;
    os << "== " << name << (ok() ? "  [ok]" : "  [PROBLEMS]") << "\n";
    if (!notes.empty()) os << "conventions: " << notes << "\n";
    auto gc = [&](const char* what, const GradcheckSummary& s) {
        if (!s.ran) return;
        os << what << ": " << (s.ok ? "passed" : "FAILED") << " (" << s.chunks << " chunk" << (s.chunks == 1 ? "" : "s");
        if (!s.ok) os << ", " << s.failed_chunks << " failed";
        os << ")\n";
        if (!s.ok && elementwise)
            os << "  worst point x = " << fmt_point(s.worst_x) << ": analytical " << num(s.analytical, 10) << ", numerical "
               << num(s.numerical, 10) << "\n";
        if (!s.ok) {
            std::istringstream lines(s.report);
            for (std::string line; std::getline(lines, line);) os << "  | " << line << "\n";
        }
    };
    gc("gradcheck", grad);
    gc("gradgradcheck", gradgrad);
    if (!elementwise) {
        os << "(not elementwise: checked on a random 3x6 input; no per-point analysis)\n";
        return os.str();
    }
    os << "points: " << points << " (" << skipped << " within gradcheck's step of a kink left out of the checks";
    if (skipped_second) os << ", " << skipped_second << " more out of gradgradcheck";
    os << ")\n";
    if (kinks.empty()) {
        os << "kinks: none found\n";
    } else {
        os << "kinks and jumps:\n";
        for (const auto& k : kinks) {
            if (k.jump)
                os << "  x = " << fmt_point(k.x) << ": f jumps by " << num(k.jump_size) << "\n";
            else
                os << "  x = " << fmt_point(k.x) << ": f'(x-) = " << num(k.left) << ", f'(x+) = " << num(k.right) << "\n";
        }
    }
    if (!derivative_kinks.empty()) {
        os << "kinks of f' (f'' jumps; left out of gradgradcheck):\n";
        for (const auto& k : derivative_kinks)
            os << "  x = " << fmt_point(k.x) << ": f''(x-) = " << num(k.left) << ", f''(x+) = " << num(k.right) << "\n";
    }
    os << "saturation (|f'| < " << num(saturation_threshold) << "): ";
    if (saturated.empty() && saturated_edges.empty()) os << "none";
    for (std::size_t i = 0; i < saturated.size(); ++i)
        os << (i ? ", " : "") << "[" << fmt_point(saturated[i].lo) << ", " << fmt_point(saturated[i].hi) << "]";
    if (!saturated_edges.empty()) {
        os << (saturated.empty() ? "" : "; ") << "at edge points";
        for (double e : saturated_edges) os << " " << fmt_point(e);
    }
    os << "\n";
    os << "f' changes sign at: ";
    if (sign_changes.empty()) os << "nowhere in the sweep";
    for (std::size_t i = 0; i < sign_changes.size(); ++i) os << (i ? ", " : "") << "x ~ " << num(sign_changes[i]);
    os << "\n";
    if (nonfinite.empty()) {
        os << "inf/NaN: none at finite inputs (float32 and float64, f, f', f'')\n";
    } else {
        os << "inf/NaN at finite inputs:\n";
        for (const auto& s : nonfinite) os << "  " << s << "\n";
    }
    for (const auto& s : special) os << "special inputs: " << s << "\n";
    if (compared) {
        os << "hand-written f' vs automatic f' (duals): largest |hand - auto| / (1 + |auto|) = " << num(max_disagreement, 3)
           << " at x = " << fmt_point(disagreement_x) << " (hand " << num(hand_value, 10) << ", automatic "
           << num(auto_value, 10) << ")" << (max_disagreement <= agreement ? "" : "  DISAGREE") << "\n";
        if (auto_nonfinite)
            os << "  the automatic f' is inf/NaN at " << auto_nonfinite << " point(s), first x = " << fmt_point(auto_nonfinite_x)
               << ", where the hand-written one is finite: f's formula overflows there (not counted)\n";
    } else if (hand_written) {
        os << "hand-written f': no automatic derivative to compare with\n";
    }
    return os.str();
}

CheckReport check(const std::string& name, const CheckOptions& options) { return check(name, activation_info(name), options); }

CheckReport check(const std::string& name, const ActivationInfo& info, const CheckOptions& o) {
    CheckReport r;
    r.name = name;
    r.notes = info.notes;
    r.elementwise = info.elementwise;
    r.hand_written = info.hand_written;
    r.agreement = o.agreement;
    r.saturation_threshold = o.saturation;
    const ActivationFn& fn = info.fn;
    if (!info.elementwise) {
        if (o.gradchecks) non_elementwise_check(r, fn);
        return r;
    }
    const std::vector<double> grid = sweep(o.lo, o.hi, o.points);
    std::vector<double> all = grid;
    for (double e : o.edges)  // edge points that the sweep does not already contain
        if (std::find(grid.begin(), grid.end(), e) == grid.end() && std::find(all.begin(), all.end(), e) == all.end())
            all.push_back(e);
    r.points = static_cast<std::int64_t>(all.size());

    // Kinks and jumps of f: at every point, then between sweep neighbours. Then the kinks of f'
    // (where f'' jumps) away from those: gradgradcheck cannot be run across them either.
    const Eval ef = [&fn](const std::vector<double>& xs) { return eval_f(fn, xs); };
    const Eval ed = [&fn](const std::vector<double>& xs) { return eval_derivatives(fn, xs)[1]; };
    auto by_x = [](const Kink& a, const Kink& b) { return a.x < b.x; };
    r.kinks = point_kinks(ef, all);
    between_point_kinks(ef, grid, r.kinks);
    std::sort(r.kinks.begin(), r.kinks.end(), by_x);
    {
        std::vector<Kink> dk = point_kinks(ed, all);
        between_point_kinks(ed, grid, dk);
        for (const auto& k : dk)
            if (!k.jump && !near_any(r.kinks, k.x, 1e-5) && !near_any(r.derivative_kinks, k.x, 1e-6))
                r.derivative_kinks.push_back(k);
        std::sort(r.derivative_kinks.begin(), r.derivative_kinks.end(), by_x);
    }

    // f, f', f'' everywhere, in both dtypes.
    const auto d64 = eval_derivatives(fn, all, Dtype::f64);
    const auto d32 = eval_derivatives(fn, all, Dtype::f32);
    const char* order_name[3] = {"f", "f'", "f''"};
    std::int64_t more = 0;
    for (int dt = 0; dt < 2; ++dt) {
        const auto& d = dt == 0 ? d64 : d32;
        for (int k = 0; k < 3; ++k)
            for (std::size_t i = 0; i < all.size(); ++i) {
                if (std::isfinite(d[k][i])) continue;
                if (r.nonfinite.size() < 12)
                    r.nonfinite.push_back(std::string(order_name[k]) + "(" + fmt_point(all[i]) + ") = " + num(d[k][i]) +
                                          (dt == 0 ? " [float64]" : " [float32]"));
                else
                    ++more;
            }
    }
    if (more) r.nonfinite.push_back("... and " + std::to_string(more) + " more");
    {
        const double inf = std::numeric_limits<double>::infinity();
        const std::vector<double> sp = {inf, -inf, std::numeric_limits<double>::quiet_NaN()};
        const auto ds = eval_derivatives(fn, sp, Dtype::f64);
        const char* lbl[3] = {"+inf", "-inf", "nan"};
        for (int i = 0; i < 3; ++i)
            r.special.push_back("f(" + std::string(lbl[i]) + ") = " + num(ds[0][i]) + ", f'(" + lbl[i] + ") = " + num(ds[1][i]));
    }

    // Saturation and sign changes of f' on the sweep (analytical f').
    const std::size_t n = grid.size();
    const auto& d1 = d64[1];
    for (std::size_t i = 0; i < n;) {
        if (!(std::fabs(d1[i]) < o.saturation)) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j + 1 < n && std::fabs(d1[j + 1]) < o.saturation) ++j;
        // A point or two where f' crosses zero is a stationary point (listed with the sign changes).
        const bool stationary = j - i < 2 && i > 0 && j + 1 < n && (d1[i - 1] > 0) != (d1[j + 1] > 0);
        if (!stationary) r.saturated.push_back({grid[i], grid[j]});
        i = j + 1;
    }
    for (std::size_t i = n; i < all.size(); ++i)
        if (std::fabs(d1[i]) < o.saturation) r.saturated_edges.push_back(all[i]);
    std::ptrdiff_t last = -1;
    for (std::size_t i = 0; i < n; ++i) {
        if (!(d1[i] != 0) || !std::isfinite(d1[i])) continue;
        if (last >= 0 && (d1[i] > 0) != (d1[static_cast<std::size_t>(last)] > 0)) {
            const double xa = grid[static_cast<std::size_t>(last)], xb = grid[i];
            const double fa = d1[static_cast<std::size_t>(last)], fb = d1[i];
            r.sign_changes.push_back(xa - fa * (xb - xa) / (fb - fa));
        }
        last = static_cast<std::ptrdiff_t>(i);
    }

    // Hand-written derivative against the automatic one.
    if (info.hand_written && info.automatic_derivative) {
        r.compared = true;
        const auto a = info.automatic_derivative(tensor(all, {-1}, Dtype::f64), 1).to_vector<double>();
        bool first = true;
        for (std::size_t i = 0; i < all.size(); ++i) {
            if (!std::isfinite(a[i]) && std::isfinite(d1[i])) {
                if (r.auto_nonfinite++ == 0) r.auto_nonfinite_x = all[i];
                continue;
            }
            double diff = std::fabs(d1[i] - a[i]) / (1 + std::fabs(a[i]));
            if (std::isnan(d1[i]) && std::isnan(a[i])) diff = 0;  // both NaN: they agree
            if (std::isnan(diff)) diff = std::numeric_limits<double>::infinity();
            if (diff > r.max_disagreement || first) {
                first = false;
                r.max_disagreement = diff;
                r.disagreement_x = all[i];
                r.hand_value = d1[i];
                r.auto_value = a[i];
            }
        }
    }

    // gradcheck and gradgradcheck away from kinks (their central difference would straddle one).
    if (o.gradchecks) {
        std::vector<double> pts;
        for (std::size_t i = 0; i < all.size(); ++i) {
            const double x = all[i];
            // Points with inf/NaN are reported above; in a chunk they would blur the worst point.
            if (near_any(r.kinks, x, 3e-6) || !std::isfinite(d64[0][i]) || !std::isfinite(d64[1][i])) {
                ++r.skipped;
                continue;
            }
            pts.push_back(x);
        }
        r.grad = chunked_check(fn, pts, o.chunk, false);
        std::vector<double> pts2;
        for (std::size_t i = 0; i < all.size(); ++i) {
            const double x = all[i];
            if (std::find(pts.begin(), pts.end(), x) == pts.end()) continue;
            if (!near_any(r.derivative_kinks, x, 3e-6) && std::isfinite(d64[2][i])) pts2.push_back(x);
        }
        r.skipped_second = static_cast<std::int64_t>(pts.size() - pts2.size());
        r.gradgrad = chunked_check(fn, pts2, o.chunk, true);
    }
    return r;
}

// --- plots -------------------------------------------------------------------------------------------
Curve sample(const std::string& name, double lo, double hi, std::int64_t n) {
    const ActivationInfo info = activation_info(name);
    if (!info.elementwise) throw ValueError("lab plot: '" + name + "' is not elementwise (f' per point is undefined)");
    if (!(lo < hi)) throw ValueError("lab plot: the range must have lo < hi, got " + num(lo) + ", " + num(hi));
    Curve c;
    c.name = name;
    c.x = sweep(lo, hi, std::max<std::int64_t>(n, 2));
    const auto d = eval_derivatives(info.fn, c.x);
    c.f = d[0];
    c.d1 = d[1];
    c.d2 = d[2];
    return c;
}

namespace {
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// Round tick spacing for a range: 1, 2 or 5 times a power of ten, about `want` ticks.
double tick_step(double span, int want = 6) {
    const double raw = span / want;
    const double p = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * p >= raw) return m * p;
    return 10 * p;
}

std::string esc(const std::string& s) {
    std::string r;
    for (char c : s) {
        if (c == '<') r += "&lt;";
        else if (c == '>') r += "&gt;";
        else if (c == '&') r += "&amp;";
        else r += c;
    }
    return r;
}
}  // namespace

std::string svg_plot(const std::vector<Curve>& curves, int width, int height) {
    if (curves.empty()) throw ValueError("lab plot: nothing to plot");
    std::ostringstream os;
    os << std::setprecision(6);
    os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
       << "\" viewBox=\"0 0 " << width << " " << height << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    const char* titles[3] = {"f(x)", "f'(x)", "f''(x)"};
    const double pw = width / 3.0;
    const double ml = 55, mr = 12, mt = 30, mb = 60;
    for (int panel = 0; panel < 3; ++panel) {
        const double x0 = panel * pw + ml, x1 = (panel + 1) * pw - mr, y0 = mt, y1 = height - mb;
        double xlo = curves[0].x.front(), xhi = curves[0].x.back();
        double ylo = std::numeric_limits<double>::infinity(), yhi = -ylo;
        for (const auto& c : curves) {
            xlo = std::min(xlo, c.x.front());
            xhi = std::max(xhi, c.x.back());
            const auto& v = panel == 0 ? c.f : panel == 1 ? c.d1 : c.d2;
            for (double y : v)
                if (std::isfinite(y)) ylo = std::min(ylo, y), yhi = std::max(yhi, y);
        }
        if (!std::isfinite(ylo)) ylo = -1, yhi = 1;
        if (yhi - ylo < 1e-12) ylo -= 0.5, yhi += 0.5;
        const double pad = 0.05 * (yhi - ylo);
        ylo -= pad, yhi += pad;
        auto sx = [&](double x) { return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0); };
        auto sy = [&](double y) { return y1 - (y - ylo) / (yhi - ylo) * (y1 - y0); };
        os << "<g class=\"panel\" id=\"panel" << panel << "\">\n";
        os << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"" << mt - 10 << "\" text-anchor=\"middle\" font-size=\"15\">"
           << esc(titles[panel]) << "</text>\n";
        // Grid and ticks.
        const double tx = tick_step(xhi - xlo), ty = tick_step(yhi - ylo);
        for (double t = std::ceil(xlo / tx) * tx; t <= xhi + 1e-9 * tx; t += tx) {
            os << "<line x1=\"" << sx(t) << "\" y1=\"" << y0 << "\" x2=\"" << sx(t) << "\" y2=\"" << y1
               << "\" stroke=\"#e6e6e6\"/>\n";
            os << "<text x=\"" << sx(t) << "\" y=\"" << y1 + 16 << "\" text-anchor=\"middle\">" << num(std::fabs(t) < 1e-12 * tx ? 0.0 : t, 4)
               << "</text>\n";
        }
        for (double t = std::ceil(ylo / ty) * ty; t <= yhi + 1e-9 * ty; t += ty) {
            os << "<line x1=\"" << x0 << "\" y1=\"" << sy(t) << "\" x2=\"" << x1 << "\" y2=\"" << sy(t)
               << "\" stroke=\"#e6e6e6\"/>\n";
            os << "<text x=\"" << x0 - 5 << "\" y=\"" << sy(t) + 4 << "\" text-anchor=\"end\">" << num(std::fabs(t) < 1e-12 * ty ? 0.0 : t, 4)
               << "</text>\n";
        }
        if (xlo < 0 && xhi > 0)
            os << "<line x1=\"" << sx(0) << "\" y1=\"" << y0 << "\" x2=\"" << sx(0) << "\" y2=\"" << y1
               << "\" stroke=\"#999\"/>\n";
        if (ylo < 0 && yhi > 0)
            os << "<line x1=\"" << x0 << "\" y1=\"" << sy(0) << "\" x2=\"" << x1 << "\" y2=\"" << sy(0)
               << "\" stroke=\"#999\"/>\n";
        os << "<rect x=\"" << x0 << "\" y=\"" << y0 << "\" width=\"" << x1 - x0 << "\" height=\"" << y1 - y0
           << "\" fill=\"none\" stroke=\"#333\"/>\n";
        // One polyline per finite run of each curve.
        for (std::size_t ci = 0; ci < curves.size(); ++ci) {
            const auto& c = curves[ci];
            const auto& v = panel == 0 ? c.f : panel == 1 ? c.d1 : c.d2;
            std::ostringstream pts;
            pts << std::setprecision(6);
            std::size_t run = 0;
            auto flush = [&] {
                if (run > 1)
                    os << "<polyline class=\"curve\" data-name=\"" << esc(c.name) << "\" fill=\"none\" stroke=\""
                       << kColors[ci % 8] << "\" stroke-width=\"1.8\" points=\"" << pts.str() << "\"/>\n";
                pts.str("");
                run = 0;
            };
            for (std::size_t i = 0; i < c.x.size(); ++i) {
                if (!std::isfinite(v[i])) {
                    flush();
                    continue;
                }
                pts << (run ? " " : "") << sx(c.x[i]) << "," << sy(v[i]);
                ++run;
            }
            flush();
        }
        os << "</g>\n";
    }
    // Legend.
    double lx = ml;
    for (std::size_t ci = 0; ci < curves.size(); ++ci) {
        const double ly = height - 18;
        os << "<line x1=\"" << lx << "\" y1=\"" << ly - 4 << "\" x2=\"" << lx + 24 << "\" y2=\"" << ly - 4 << "\" stroke=\""
           << kColors[ci % 8] << "\" stroke-width=\"3\"/>\n";
        os << "<text x=\"" << lx + 30 << "\" y=\"" << ly << "\">" << esc(curves[ci].name) << "</text>\n";
        lx += 40 + 8.0 * static_cast<double>(curves[ci].name.size()) + 20;
    }
    os << "</svg>\n";
    return os.str();
}

std::string gnuplot_script(const std::vector<Curve>& curves, const std::string& data_path, const std::string& png_path,
                           bool cairo) {
    if (curves.empty()) throw ValueError("lab plot: nothing to plot");
    {
        std::ofstream data(data_path);
        if (!data) throw ValueError("lab plot: cannot write " + data_path);
        data << std::setprecision(12);
        for (const auto& c : curves) {
            data << "# " << c.name << "\n";
            for (std::size_t i = 0; i < c.x.size(); ++i) {
                auto put = [&](double v) {
                    if (std::isfinite(v)) data << " " << v;
                    else data << " NaN";
                };
                data << c.x[i];
                put(c.f[i]);
                put(c.d1[i]);
                put(c.d2[i]);
                data << "\n";
            }
            data << "\n\n";
        }
    }
    auto quoted = [](const std::string& s) {  // a gnuplot double-quoted string
        std::string r = "\"";
        for (char ch : s) {
            if (ch == '"' || ch == '\\') r += '\\';
            r += ch;
        }
        return r + "\"";
    };
    std::ostringstream s;
    s << "set terminal " << (cairo ? "pngcairo" : "png") << " size 1500,460\n";
    s << "set output " << quoted(png_path) << "\n";
    s << "set datafile missing \"NaN\"\n";
    s << "set grid\nset key top left\nset xzeroaxis\nset yzeroaxis\n";
    s << "set multiplot layout 1,3\n";
    const char* titles[3] = {"f(x)", "f'(x)", "f''(x)"};
    for (int panel = 0; panel < 3; ++panel) {
        s << "set title " << quoted(titles[panel]) << "\n";
        s << "plot ";
        for (std::size_t ci = 0; ci < curves.size(); ++ci)
            s << (ci ? ", " : "") << quoted(data_path) << " index " << ci << " using 1:" << (panel + 2)
              << " with lines lw 2 lc rgb \"" << kColors[ci % 8] << "\" title " << quoted(curves[ci].name);
        s << "\n";
    }
    s << "unset multiplot\n";
    return s.str();
}

}  // namespace xg::lab

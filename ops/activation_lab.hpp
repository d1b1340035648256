// ops/: the activation lab's analysis, shared by the xgrad-lab program and the tests.
//   check:  gradcheck + gradgradcheck on a dense sweep plus edge points, kinks and jumps found from
//           one-sided slopes, saturation ranges, sign changes of f', inf/NaN behaviour, and for a
//           hand-written derivative its largest disagreement with the automatic one (duals).
//   sample / svg_plot / gnuplot_script: f, f' and f'' of one or several activations over a range.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "activation_registry.hpp"

namespace xg::lab {

/// Settings of check().
struct CheckOptions {
    double lo = -10.0;             ///< dense sweep from lo ...
    double hi = 10.0;              ///< ... to hi
    std::int64_t points = 2001;    ///< sweep points, ends included (spacing 0.01 by default)
    std::vector<double> edges = {0.0, 1e-8, -1e-8, 20.0, -20.0, 88.0, -88.0, 1e4, -1e4};  ///< extra points
    std::int64_t chunk = 128;      ///< points per gradcheck call (gradcheck is quadratic in its input size)
    double saturation = 1e-3;      ///< |f'| below this counts as saturated
    double agreement = 1e-7;       ///< hand-written vs automatic f': largest allowed |hand - auto| / (1 + |auto|)
    bool gradchecks = true;        ///< run gradcheck and gradgradcheck (the slow part)
};

/// A point where the one-sided derivatives differ (a kink) or where f itself jumps.
struct Kink {
    double x = 0;
    double left = 0, right = 0;  ///< one-sided slopes (a kink)
    bool jump = false;           ///< f is discontinuous here
    double jump_size = 0;        ///< f(x+) - f(x-) for a jump
};

/// A closed interval of the sweep.
struct Interval {
    double lo = 0, hi = 0;
};

/// Outcome of gradcheck (or gradgradcheck) over all chunks of the sweep.
struct GradcheckSummary {
    bool ran = false;
    bool ok = true;
    std::int64_t chunks = 0, failed_chunks = 0;
    double worst_x = 0;      ///< input of the worst failing element
    double analytical = 0;   ///< its analytical value
    double numerical = 0;    ///< its numerical value
    std::string report;      ///< gradcheck's report of the chunk with the worst failure
};

/// Everything check() found.
struct CheckReport {
    std::string name;
    std::string notes;                ///< the registry's notes (conventions)
    bool elementwise = true;
    std::int64_t points = 0;          ///< points analysed (sweep + edges)
    std::int64_t skipped = 0;         ///< points left out of gradcheck (within its step of a kink)
    GradcheckSummary grad, gradgrad;
    std::int64_t skipped_second = 0;  ///< further points left out of gradgradcheck (at kinks of f')
    std::vector<Kink> kinks;          ///< sorted by x
    std::vector<Kink> derivative_kinks;  ///< kinks of f' (f'' jumps) where f itself is smooth; left/right are f''
    std::vector<Interval> saturated;  ///< sweep intervals with |f'| < saturation
    std::vector<double> saturated_edges;  ///< edge points with |f'| < saturation
    std::vector<double> sign_changes;     ///< where f' changes sign (interpolated)
    std::vector<std::string> nonfinite;   ///< inf or NaN in f, f' or f'' at a finite input
    std::vector<std::string> special;     ///< f and f' at +inf, -inf and NaN (informative)
    bool hand_written = false;
    bool compared = false;            ///< the hand-written f' was compared with the automatic one
    double max_disagreement = 0;      ///< largest |hand - auto| / (1 + |auto|)
    double disagreement_x = 0;        ///< where
    double hand_value = 0, auto_value = 0;
    /// Points where the automatic f' is inf/NaN but the hand-written one is finite (f's formula
    /// overflows there, e.g. 1 / (1 + e^-x) at x = -1e4): left out of the comparison and reported.
    std::int64_t auto_nonfinite = 0;
    double auto_nonfinite_x = 0;  ///< the first such point
    double agreement = 1e-7;            ///< the tolerance used for the comparison
    double saturation_threshold = 1e-3;  ///< the |f'| used for saturation
    /// True when gradcheck and gradgradcheck passed, no unexpected inf/NaN, and any hand-written
    /// derivative agrees with the automatic one.
    bool ok() const;
    /// A readable report.
    std::string text() const;
};

/// Analyses an activation given its registry entry.
CheckReport check(const std::string& name, const ActivationInfo& info, const CheckOptions& options = {});
/// Analyses the activation registered under `name`.
CheckReport check(const std::string& name, const CheckOptions& options = {});

/// f, f' and f'' of an elementwise activation sampled on [lo, hi] (float64, through autograd).
struct Curve {
    std::string name;
    std::vector<double> x, f, d1, d2;
};
/// Samples the activation registered as `name` (elementwise only; throws ValueError otherwise).
Curve sample(const std::string& name, double lo, double hi, std::int64_t n = 801);
/// An SVG document with three panels (f, f', f'') and one coloured line per curve.
std::string svg_plot(const std::vector<Curve>& curves, int width = 1500, int height = 460);
/// Writes the curves as gnuplot data blocks (x f f' f'') to data_path and returns a script that
/// draws the same three panels into png_path (terminal pngcairo, or png when cairo is missing).
std::string gnuplot_script(const std::vector<Curve>& curves, const std::string& data_path, const std::string& png_path,
                           bool cairo = true);

}  // namespace xg::lab

// autograd/: gradcheck and gradgradcheck, a public API: compare the analytical gradients of a
// function with central differences in float64, and report the worst element.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor.hpp"

namespace xg {

/// Settings of gradcheck (the defaults are PyTorch's).
struct GradcheckOptions {
    double eps = 1e-6;   ///< central-difference step
    double atol = 1e-5;  ///< absolute tolerance
    double rtol = 1e-3;  ///< relative tolerance (of the numerical value)
    /// Compare random projections u^T J v instead of the full Jacobian (for large inputs).
    bool fast_mode = false;
    int fast_projections = 4;          ///< number of (u, v) pairs in fast mode
    bool check_reentrant = true;       ///< two backward passes must agree bit for bit
    bool check_no_grad_inputs = true;  ///< inputs without requires_grad must get no gradient
    std::uint64_t seed = 0;            ///< seed of the random projections and grad_outputs
};

/// One compared (output, input) block of the Jacobian.
struct GradcheckEntry {
    std::size_t output = 0, input = 0;
    bool projection = false;               ///< fast mode: u^T J v for random u, v (no element indices)
    std::int64_t worst_index = -1;         ///< flat index into the input of the worst element (-1: none)
    std::int64_t worst_output_index = -1;  ///< flat index into the output of the worst element
    Shape input_shape, output_shape;
    double analytical = 0, numerical = 0, abs_error = 0, rel_error = 0;
    double tolerance = 0;  ///< atol + rtol |numerical| at the worst element
    bool ok = true;
    /// The worst element sits at a kink: its left and right slopes differ, or the central
    /// difference changes when eps shrinks tenfold.
    bool at_kink = false;
};

/// The result: converts to bool and prints a report.
class GradcheckResult {
public:
    bool ok = true;
    bool promoted_from_float32 = false;
    bool fast_mode = false;
    double eps = 0, atol = 0, rtol = 0;  ///< the settings used
    std::vector<GradcheckEntry> entries;
    std::vector<std::string> problems;  ///< reentrancy, gradients on no-grad inputs, shape errors
    explicit operator bool() const { return ok; }
    /// Human-readable report: one line per (output, input) block and every problem found.
    std::string report() const;
};
std::ostream& operator<<(std::ostream& os, const GradcheckResult& r);

/// A function under test: inputs to outputs.
using GradFunction = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

/// Checks first derivatives of fn at inputs (those with requires_grad) against central differences
/// (f(x + eps e_j) - f(x - eps e_j)) / 2 eps in float64; an element passes when
/// |analytical - numerical| <= atol + rtol |numerical|. Also checks that two backward passes agree
/// bit for bit and that inputs without requires_grad receive no gradient. Does not touch the
/// caller's inputs or random generator.
GradcheckResult gradcheck(const GradFunction& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});
/// Checks second derivatives: gradcheck of (inputs, v) -> v^T J computed with create_graph.
GradcheckResult gradgradcheck(const GradFunction& fn, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options = {});

/// Adapts a callable returning one Tensor (or a vector) into a GradFunction.
template <class F>
GradFunction as_grad_function(F&& f) {
    if constexpr (std::is_convertible_v<std::invoke_result_t<F&, const std::vector<Tensor>&>, Tensor>)
        return [f = std::forward<F>(f)](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in)}; };
    else
        return GradFunction(std::forward<F>(f));
}
/// gradcheck for a callable returning one Tensor.
template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, GradFunction>>>
GradcheckResult gradcheck(F&& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& options = {}) {
    return gradcheck(as_grad_function(std::forward<F>(fn)), inputs, options);
}
/// gradgradcheck for a callable returning one Tensor.
template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, GradFunction>>>
GradcheckResult gradgradcheck(F&& fn, const std::vector<Tensor>& inputs, const GradcheckOptions& options = {}) {
    return gradgradcheck(as_grad_function(std::forward<F>(fn)), inputs, options);
}

}  // namespace xg

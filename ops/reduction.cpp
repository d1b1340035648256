#include "reduction.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "arithmetic.hpp"
#include "math.hpp"
#include "shape_ops.hpp"

namespace xg {

namespace {
using Grads = std::vector<Tensor>;

void check_defined(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": the input is undefined");
}

// Shape of x with the reduced axes kept as size 1.
Shape keepdim_shape(const Shape& s, const std::vector<int>& axes) {
    Shape r = s;
    for (int a : axes) r[a] = 1;
    return r;
}

std::int64_t reduced_count(const Shape& s, const std::vector<int>& axes) {
    std::int64_t n = 1;
    for (int a : axes) n *= s[a];
    return n;
}

// Gradient of a reduction output g (keepdim or not) brought back to x's shape.
Tensor expand_back(const Tensor& g, const Shape& in, const std::vector<int>& axes) {
    return broadcast_to(reshape(g, keepdim_shape(in, axes)), in);
}

Tensor extreme(const Tensor& x, const Axes& axes_in, bool keepdim, bool is_max) {
    const char* op = is_max ? "max" : "min";
    check_defined(x, op);
    const auto axes = normalize_axes(axes_in, x.ndim(), op);
    if (reduced_count(x.shape(), axes) == 0)
        throw ValueError(std::string(op) + ": cannot reduce over an empty dimension of shape " + shape_str(x.shape()));
    Array y = engine::reduce_extreme(x.array(), axes, keepdim, is_max);
    if (!needs_record({x})) return Tensor(std::move(y));
    Saved sx(x, op);
    const Shape in = x.shape();
    return make_result(op, std::move(y), {x},
                       [sx, in, axes](const Tensor& g, const Tensor& out) {
                           const Tensor& xv = sx.get();
                           Tensor mask;
                           {
                               NoGradGuard ng;
                               mask = eq(xv, expand_back(out.detach(), in, axes));
                               mask = mask / expand_back(sum(mask, Axes(axes.begin(), axes.end()), true), in, axes);
                           }
                           return Grads{expand_back(g, in, axes) * mask};
                       },
                       true);
}
}  // namespace

Tensor sum(const Tensor& x, const Axes& axes_in, bool keepdim) {
    check_defined(x, "sum");
    const auto axes = normalize_axes(axes_in, x.ndim(), "sum");
    const Shape in = x.shape();
    return make_result("sum", engine::reduce_sum(x.array(), axes, keepdim), {x},
                       [in, axes](const Tensor& g, const Tensor&) { return Grads{expand_back(g, in, axes)}; });
}

Tensor mean(const Tensor& x, const Axes& axes_in, bool keepdim) {
    check_defined(x, "mean");
    detail::require_floating(x.dtype(), "mean");
    const auto axes = normalize_axes(axes_in, x.ndim(), "mean");
    const std::int64_t n = reduced_count(x.shape(), axes);
    return sum(x, axes_in, keepdim) / static_cast<double>(n);  // n == 0 gives 0/0 = NaN as PyTorch
}

Tensor var(const Tensor& x, const Axes& axes_in, std::int64_t correction, bool keepdim) {
    check_defined(x, "var");
    detail::require_floating(x.dtype(), "var");
    const auto axes = normalize_axes(axes_in, x.ndim(), "var");
    const std::int64_t n = reduced_count(x.shape(), axes);
    const Tensor centered = x - mean(x, axes_in, true);
    return sum(square(centered), axes_in, keepdim) / static_cast<double>(std::max<std::int64_t>(n - correction, 0));
}

Tensor std(const Tensor& x, const Axes& axes, std::int64_t correction, bool keepdim) {
    check_defined(x, "std");
    detail::require_floating(x.array(), "std");
    const Tensor v = var(x, axes, correction, keepdim);
    Array y = detail::unary_simd(v.array(), "std", [](auto t) { return xsimd::sqrt(t); });
    return make_result(
        "std", std::move(y), {v},
        [](const Tensor& g, const Tensor& out) {
            // NOTE: d sqrt(v)/dv = 1 / (2 sqrt(v)), taken as 0 where std == 0 (PyTorch's std_backward);
            // the denominator is made safe there so that higher derivatives stay finite.
            const Tensor zero = scalar_like(0.0, out), one = scalar_like(1.0, out);
            const Tensor at_zero = eq(out, zero);
            return Grads{where(at_zero, zero, g / (where(at_zero, one, out) * 2.0))};
        },
        true);
}

Tensor prod(const Tensor& x, const Axes& axes_in, bool keepdim) {
    check_defined(x, "prod");
    const auto axes = normalize_axes(axes_in, x.ndim(), "prod");
    Array y = engine::reduce_prod(x.array(), axes, keepdim);
    if (!needs_record({x})) return Tensor(std::move(y));
    Saved sx(x, "prod");
    const Shape in = x.shape();
    return make_result("prod", std::move(y), {x},
                       [sx, in, axes](const Tensor& g, const Tensor& out) {
                           // d prod / d x_i = product of the other elements: out / x_i where x_i != 0;
                           // at a single zero, the product of the non-zeros; 0 when two or more are zero.
                           const Tensor& xv = sx.get();
                           const Axes ax(axes.begin(), axes.end());
                           const Tensor zero = scalar_like(0.0, xv), one = scalar_like(1.0, xv);
                           const Tensor is_zero = eq(xv, zero);
                           const Tensor nonzero = where(is_zero, one, xv);
                           const Tensor zero_count = expand_back(sum(is_zero, ax, true), in, axes);
                           const Tensor prod_nonzero = expand_back(prod(nonzero, ax, true), in, axes);
                           const Tensor others = where(is_zero, where(eq(zero_count, one), prod_nonzero, zero),
                                                       expand_back(out, in, axes) / nonzero);
                           return Grads{expand_back(g, in, axes) * others};
                       },
                       true);
}

Tensor max(const Tensor& x, const Axes& axes, bool keepdim) { return extreme(x, axes, keepdim, true); }
Tensor min(const Tensor& x, const Axes& axes, bool keepdim) { return extreme(x, axes, keepdim, false); }

namespace {
Tensor arg_extreme(const Tensor& x, std::optional<std::int64_t> axis, bool keepdim, bool is_max) {
    const char* op = is_max ? "argmax" : "argmin";
    check_defined(x, op);
    if (!axis) {
        if (x.numel() == 0) throw ValueError(std::string(op) + ": the input is empty (shape " + shape_str(x.shape()) + ")");
        return Tensor(engine::reduce_arg_extreme(x.array(), -1, keepdim, is_max));
    }
    const int a = normalize_axis(*axis, x.ndim(), op);
    if (x.ndim() == 0) return Tensor(engine::full({}, Dtype::i64, 0));
    if (x.shape()[a] == 0)
        throw ValueError(std::string(op) + ": cannot reduce over an empty dimension of shape " + shape_str(x.shape()));
    return Tensor(engine::reduce_arg_extreme(x.array(), a, keepdim, is_max));
}
}  // namespace

Tensor argmax(const Tensor& x, std::optional<std::int64_t> axis, bool keepdim) {
    return arg_extreme(x, axis, keepdim, true);
}
Tensor argmin(const Tensor& x, std::optional<std::int64_t> axis, bool keepdim) {
    return arg_extreme(x, axis, keepdim, false);
}

Tensor logsumexp(const Tensor& x, const Axes& axes_in, bool keepdim) {
    check_defined(x, "logsumexp");
    detail::require_floating(x.dtype(), "logsumexp");
    const auto axes = normalize_axes(axes_in, x.ndim(), "logsumexp");
    if (reduced_count(x.shape(), axes) == 0) return log(sum(exp(x), axes_in, keepdim));  // log(0) = -inf
    Tensor m;
    {
        NoGradGuard ng;
        m = max(x.detach(), axes_in, true);
        // An all -inf (or +inf) slice would give inf - inf = NaN: shift by 0 there instead.
        const Tensor finite = lt(abs(m), scalar_like(std::numeric_limits<double>::infinity(), m));
        m = where(finite, m, scalar_like(0.0, m));
    }
    Tensor r = log(sum(exp(x - m), axes_in, true)) + m;
    if (keepdim) return r;
    Shape out;
    for (std::size_t i = 0; i < x.ndim(); ++i)
        if (std::find(axes.begin(), axes.end(), static_cast<int>(i)) == axes.end()) out.push_back(x.shape()[i]);
    return reshape(r, out);
}

}  // namespace xg

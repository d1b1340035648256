#include "reduction.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "arithmetic.hpp"
#include "factories.hpp"
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
    return make_result(
        op, std::move(y), {x},
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

namespace {
// Product of the other elements of each reduced group, exact at zeros and differentiable to any
// order: the reduced axes are flattened to one of length n, and row i of an n x n matrix holds the
// group with element i replaced by 1; the product of each row is the product of the others.
// O(n^2) memory: used only when a group holds a zero and higher derivatives are being recorded.
Tensor prod_of_others_exact(const Tensor& x, const std::vector<int>& axes) {
    const Shape& in = x.shape();
    std::vector<std::int64_t> perm, inverse(in.size());
    Shape kept;
    std::int64_t n = 1;
    for (std::size_t i = 0; i < in.size(); ++i)
        if (std::find(axes.begin(), axes.end(), static_cast<int>(i)) == axes.end()) {
            perm.push_back(static_cast<std::int64_t>(i));
            kept.push_back(in[i]);
        }
    for (int a : axes) {
        perm.push_back(a);
        n *= in[a];
    }
    for (std::size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<std::int64_t>(i);
    Shape flat = kept;
    flat.push_back(n);
    const Tensor rows = unsqueeze(reshape(permute(x, perm), flat), -2);  // [..., 1, n]
    const Tensor diagonal = eye(n, n, x.dtype());
    const Tensor others = prod(where(diagonal, scalar_like(1.0, x), rows), {-1});  // [..., n]
    Shape permuted = kept;
    for (int a : axes) permuted.push_back(in[a]);
    return permute(reshape(others, permuted), inverse);
}

bool has_zero(const Array& a) {
    return detail::dispatch(a.dtype(), "prod", [&]<class T>() {
        const T* p = a.data<T>();
        for (std::int64_t i = 0; i < a.numel(); ++i)
            if (p[i] == T(0)) return true;
        return false;
    });
}
}  // namespace

Tensor prod(const Tensor& x, const Axes& axes_in, bool keepdim) {
    check_defined(x, "prod");
    const auto axes = normalize_axes(axes_in, x.ndim(), "prod");
    Array y = engine::reduce_prod(x.array(), axes, keepdim);
    if (!needs_record({x})) return Tensor(std::move(y));
    Saved sx(x, "prod");
    const Shape in = x.shape();
    return make_result(
        "prod", std::move(y), {x},
        [sx, in, axes](const Tensor& g, const Tensor& out) {
            // d prod / d x_i = product of the other elements: out / x_i without zeros.
            const Tensor& xv = sx.get();
            const Tensor gx = expand_back(g, in, axes);
            if (!has_zero(xv.array())) return Grads{gx * (expand_back(out, in, axes) / xv)};
            if (is_grad_enabled()) return Grads{gx * prod_of_others_exact(xv, axes)};
            // First order only (no graph recorded): at a single zero the product of the
            // non-zeros, 0 elsewhere in its group; all 0 when a group has two zeros.
            const Axes ax(axes.begin(), axes.end());
            const Tensor zero = scalar_like(0.0, xv), one = scalar_like(1.0, xv);
            const Tensor is_zero = eq(xv, zero);
            const Tensor nonzero = where(is_zero, one, xv);
            const Tensor zero_count = expand_back(sum(is_zero, ax, true), in, axes);
            const Tensor prod_nonzero = expand_back(prod(nonzero, ax, true), in, axes);
            const Tensor others =
                where(is_zero, where(eq(zero_count, one), prod_nonzero, zero), expand_back(out, in, axes) / nonzero);
            return Grads{gx * others};
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
        if (x.numel() == 0)
            throw ValueError(std::string(op) + ": the input is empty (shape " + shape_str(x.shape()) + ")");
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

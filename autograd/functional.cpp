// jacobian, hessian, vjp, jvp and hvp on top of xg::grad (like torch.autograd.functional).
#include <functional>

#include "../ops/factories.hpp"
#include "../ops/shape_ops.hpp"
#include "grad.hpp"

namespace xg {

namespace {

// The input as it is differentiated: x itself when the result must stay differentiable with
// respect to x (create_graph), otherwise a fresh leaf sharing x's buffer.
Tensor prepare_input(const Tensor& x, bool create_graph, const char* op) {
    if (!x.defined()) throw ValueError(std::string(op) + ": the input is undefined");
    if (!is_floating(x.dtype()))
        throw DtypeError(std::string(op) + ": the input must be float32 or float64, got " + dtype_name(x.dtype()));
    if (create_graph && x.requires_grad()) return x;
    return x.detach().requires_grad_();
}

Tensor evaluate(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const char* op) {
    Tensor y = func(x);
    if (!y.defined()) throw ValueError(std::string(op) + ": the function returned an undefined tensor");
    if (!is_floating(y.dtype()))
        throw DtypeError(std::string(op) + ": the function must return a floating-point tensor, got " +
                         dtype_name(y.dtype()));
    return y;
}

Tensor or_zeros(const Tensor& g, const Shape& shape, Dtype dtype) { return g.defined() ? g : zeros(shape, dtype); }

// e_k: zeros of `shape` with a one at flat index k.
Tensor unit(const Shape& shape, Dtype dtype, std::int64_t k) {
    std::vector<double> v(static_cast<std::size_t>(shape_numel(shape)), 0.0);
    v[static_cast<std::size_t>(k)] = 1.0;
    return tensor(v, shape, dtype);
}

Shape concat_shapes(const Shape& a, const Shape& b) {
    Shape r = a;
    r.insert(r.end(), b.begin(), b.end());
    return r;
}

void check_same_shape(const Tensor& v, const Shape& want, const char* op, const char* what) {
    if (!v.defined()) throw ValueError(std::string(op) + ": " + what + " is undefined");
    if (v.shape() != want)
        throw ShapeError(std::string(op) + ": " + what + " has shape " + shape_str(v.shape()) + ", expected " +
                         shape_str(want));
}

// Rows d(out . e_k)/dx for every k, stacked into out.shape + x.shape.
Tensor jacobian_rows(const Tensor& out, const Tensor& x, bool create_graph) {
    const Shape js = concat_shapes(out.shape(), x.shape());
    if (!out.requires_grad() || out.numel() == 0 || x.numel() == 0) return zeros(js, x.dtype());
    std::vector<Tensor> rows;
    rows.reserve(static_cast<std::size_t>(out.numel()));
    for (std::int64_t k = 0; k < out.numel(); ++k) {
        const Tensor g = grad({out}, {x}, {unit(out.shape(), out.dtype(), k)}, true, create_graph, true)[0];
        rows.push_back(reshape(or_zeros(g, x.shape(), x.dtype()), {x.numel()}));
    }
    return reshape(stack(rows, 0), js);
}

}  // namespace

Tensor jacobian(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, bool create_graph) {
    EnableGradGuard enable;
    const Tensor xin = prepare_input(x, create_graph, "jacobian");
    const Tensor y = evaluate(func, xin, "jacobian");
    return jacobian_rows(y, xin, create_graph);
}

Tensor hessian(const std::function<Tensor(const Tensor&)>& func, const Tensor& x) {
    EnableGradGuard enable;
    const Tensor xin = prepare_input(x, false, "hessian");
    const Tensor y = evaluate(func, xin, "hessian");
    if (y.numel() != 1)
        throw ShapeError("hessian: the function must return a single value, got shape " + shape_str(y.shape()));
    if (!y.requires_grad()) return zeros(concat_shapes(x.shape(), x.shape()), x.dtype());
    const Tensor g = grad({y}, {xin}, {}, true, true, true)[0];
    if (!g.defined() || !g.requires_grad()) return zeros(concat_shapes(x.shape(), x.shape()), x.dtype());
    return jacobian_rows(g, xin, false);
}

std::pair<Tensor, Tensor> vjp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph) {
    EnableGradGuard enable;
    const Tensor xin = prepare_input(x, create_graph, "vjp");
    const Tensor y = evaluate(func, xin, "vjp");
    Tensor vv = v;
    if (!vv.defined()) {
        if (y.numel() != 1)
            throw GraphError("vjp: v can be omitted only for a function with one output value, got shape " +
                             shape_str(y.shape()));
        vv = ones(y.shape(), y.dtype());
    }
    check_same_shape(vv, y.shape(), "vjp", "v");
    Tensor g;
    if (y.requires_grad()) g = grad({y}, {xin}, {vv}, create_graph, create_graph, true)[0];
    return {create_graph ? y : y.detach(), or_zeros(g, x.shape(), x.dtype())};
}

std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph) {
    EnableGradGuard enable;
    check_same_shape(v, x.shape(), "jvp", "v");
    const Tensor xin = prepare_input(x, create_graph, "jvp");
    const Tensor y = evaluate(func, xin, "jvp");
    const Tensor y_out = create_graph ? y : y.detach();
    if (!y.requires_grad()) return {y_out, zeros(y.shape(), y.dtype())};
    // Double-backward trick: u -> u^T J is linear in u, and its gradient with respect to u along v is J v.
    const Tensor u = zeros(y.shape(), y.dtype()).requires_grad_();
    const Tensor ut_j = grad({y}, {xin}, {u}, true, true, true)[0];
    if (!ut_j.defined() || !ut_j.requires_grad()) return {y_out, zeros(y.shape(), y.dtype())};
    const Tensor jv = grad({ut_j}, {u}, {v.to(ut_j.dtype())}, create_graph, create_graph, true)[0];
    return {y_out, or_zeros(jv, y.shape(), y.dtype())};
}

std::pair<Tensor, Tensor> hvp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph) {
    EnableGradGuard enable;
    check_same_shape(v, x.shape(), "hvp", "v");
    const Tensor xin = prepare_input(x, create_graph, "hvp");
    const Tensor y = evaluate(func, xin, "hvp");
    if (y.numel() != 1)
        throw ShapeError("hvp: the function must return a single value, got shape " + shape_str(y.shape()));
    const Tensor y_out = create_graph ? y : y.detach();
    if (!y.requires_grad()) return {y_out, zeros(x.shape(), x.dtype())};
    const Tensor g = grad({y}, {xin}, {}, true, true, true)[0];
    if (!g.defined() || !g.requires_grad()) return {y_out, zeros(x.shape(), x.dtype())};
    const Tensor hv = grad({g}, {xin}, {v.to(g.dtype())}, create_graph, create_graph, true)[0];
    return {y_out, or_zeros(hv, x.shape(), x.dtype())};
}

}  // namespace xg

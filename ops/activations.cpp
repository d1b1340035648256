#include "activations.hpp"

#include "../autograd/node.hpp"
#include "../engine/kernels.hpp"
#include "arithmetic.hpp"
#include "math.hpp"
#include "reduction.hpp"

namespace xg {

namespace {
using Grads = std::vector<Tensor>;

void check_defined(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": the input is undefined");
}

// Forward of a fused backward kernel f(g, y) (same shape, promoted dtype).
template <class F>
Array fused(const Tensor& g, const Tensor& y, const char* op, F f) {
    check_defined(g, op), check_defined(y, op);
    if (g.shape() != y.shape())
        throw ShapeError(std::string(op) + ": gradient shape " + shape_str(g.shape()) + " differs from output shape " +
                         shape_str(y.shape()));
    const Dtype d = promote(g.dtype(), y.dtype());
    return detail::binary_simd_same_shape(g.array().to(d), y.array().to(d), op, f, detail::kGrainCheap);
}
}  // namespace

Tensor sigmoid(const Tensor& x) {
    check_defined(x, "sigmoid");
    Array y = detail::unary_simd(x.array(), "sigmoid", [](auto v) {
        using B = decltype(v);
        return B(1) / (B(1) + xsimd::exp(-v));
    });
    return make_result("sigmoid", std::move(y), {x},
                       [](const Tensor& g, const Tensor& out) { return Grads{sigmoid_backward(g, out)}; }, true);
}

Tensor sigmoid_backward(const Tensor& g, const Tensor& y) {
    Array r = fused(g, y, "sigmoid_backward", [](auto gv, auto yv) { return gv * yv * (decltype(yv)(1) - yv); });
    if (!needs_record({g, y})) return Tensor(std::move(r));
    Saved sg(g, "sigmoid_backward"), sy(y, "sigmoid_backward");
    return make_result("sigmoid_backward", std::move(r), {g, y}, [sg, sy](const Tensor& gg, const Tensor&) {
        const Tensor& yv = sy.get();
        // d/dg = y(1-y), d/dy = g(1-2y)
        return Grads{sigmoid_backward(gg, yv), gg * sg.get() * (1.0 - 2.0 * yv)};
    });
}

Tensor tanh(const Tensor& x) {
    check_defined(x, "tanh");
    Array y = detail::unary_simd(x.array(), "tanh", [](auto v) { return xsimd::tanh(v); });
    return make_result("tanh", std::move(y), {x},
                       [](const Tensor& g, const Tensor& out) { return Grads{tanh_backward(g, out)}; }, true);
}

Tensor tanh_backward(const Tensor& g, const Tensor& y) {
    Array r = fused(g, y, "tanh_backward", [](auto gv, auto yv) { return gv * (decltype(yv)(1) - yv * yv); });
    if (!needs_record({g, y})) return Tensor(std::move(r));
    Saved sg(g, "tanh_backward"), sy(y, "tanh_backward");
    return make_result("tanh_backward", std::move(r), {g, y}, [sg, sy](const Tensor& gg, const Tensor&) {
        const Tensor& yv = sy.get();
        // d/dg = 1 - y^2, d/dy = -2 g y
        return Grads{tanh_backward(gg, yv), gg * sg.get() * yv * -2.0};
    });
}

Tensor relu(const Tensor& x) {
    check_defined(x, "relu");
    Array y = detail::unary_simd(
        x.array(), "relu", [](auto v) { return xsimd::select(v > decltype(v)(0), v, decltype(v)(0)); },
        detail::kGrainCheap);
    return make_result("relu", std::move(y), {x},
                       [](const Tensor& g, const Tensor& out) { return Grads{relu_backward(g, out)}; }, true);
}

Tensor relu_backward(const Tensor& g, const Tensor& y) {
    // NOTE: relu'(0) = 0: the mask is y > 0, and y == 0 at x == 0.
    Array r = fused(g, y, "relu_backward", [](auto gv, auto yv) {
        using B = decltype(gv);
        return xsimd::select(yv > B(0), gv, B(0));
    });
    if (!needs_record({g, y})) return Tensor(std::move(r));
    Saved sy(y, "relu_backward");
    return make_result("relu_backward", std::move(r), {g, y}, [sy](const Tensor& gg, const Tensor&) {
        return Grads{relu_backward(gg, sy.get()), Tensor()};  // piecewise linear: no gradient w.r.t. y
    });
}

Tensor softmax(const Tensor& x, std::int64_t axis) { return exp(log_softmax(x, axis)); }

Tensor log_softmax(const Tensor& x, std::int64_t axis) {
    check_defined(x, "log_softmax");
    return x - logsumexp(x, {axis}, true);
}

}  // namespace xg

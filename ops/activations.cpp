// ops/: the built-in elementwise activations, sigmoid to celu (definitions in activation_defs.hpp).
#include "activation_defs.hpp"

namespace xg {
using namespace activation_defs;

// --- elementwise built-ins ----------------------------------------------------------------------
Tensor sigmoid(const Tensor& x) { return detail::elementwise_forward(sigmoid_def(), x); }
Tensor sigmoid_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(sigmoid_def(), g, y); }
Tensor tanh(const Tensor& x) { return detail::elementwise_forward(tanh_def(), x); }
Tensor tanh_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(tanh_def(), g, y); }
Tensor relu(const Tensor& x) { return detail::elementwise_forward(relu_def(), x); }
Tensor relu_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(relu_def(), g, y); }

Tensor relu6(const Tensor& x) { return detail::elementwise_forward(hardtanh_def("relu6", 0.0, 6.0), x); }

Tensor hardtanh(const Tensor& x, double min_val, double max_val) {
    if (!(min_val <= max_val))
        throw ValueError("hardtanh: min_val " + std::to_string(min_val) + " is greater than max_val " +
                         std::to_string(max_val));
    return detail::elementwise_forward(hardtanh_def("hardtanh", min_val, max_val), x);
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
    return detail::elementwise_forward(leaky_relu_def("leaky_relu", negative_slope), x);
}

Tensor prelu(const Tensor& x, const Tensor& weight) {
    detail::require_defined(x, "prelu");
    detail::require_defined(weight, "prelu", "the weight");
    Tensor w = weight;
    if (weight.numel() != 1) {
        if (x.ndim() < 2 || weight.ndim() != 1 || weight.numel() != x.size(1))
            throw ShapeError("prelu: weight of shape " + shape_str(weight.shape()) +
                             " must have 1 element or one per channel (dimension 1) of the input of shape " +
                             shape_str(x.shape()));
        Shape s(x.ndim() - 1, 1);
        s[0] = weight.numel();
        w = reshape(weight, s);
    }
    return detail::param_forward(prelu_def(), x, w);
}

Tensor rrelu(const Tensor& x, double lower, double upper, bool training) {
    if (!(lower <= upper))
        throw ValueError("rrelu: lower " + std::to_string(lower) + " is greater than upper " + std::to_string(upper));
    if (!training) return detail::elementwise_forward(leaky_relu_def("rrelu", (lower + upper) / 2), x);
    detail::require_defined(x, "rrelu");
    detail::require_floating(x.dtype(), "rrelu");
    // One slope per element (used where x <= 0), from the seeded generator; a constant of the graph.
    return detail::param_forward(rrelu_train_def(), x, uniform(x.shape(), lower, upper, x.dtype()));
}

Tensor elu(const Tensor& x, double alpha) {
    if (alpha >= 0) return detail::elementwise_forward(elu_output_def("elu", alpha, 1.0), x);
    return detail::elementwise_forward(elu_input_def("elu", alpha), x);
}

Tensor selu(const Tensor& x) {
    static const auto d = elu_output_def("selu", kSeluAlpha, kSeluScale);
    return detail::elementwise_forward(d, x);
}

Tensor celu(const Tensor& x, double alpha) {
    if (alpha == 0) throw ValueError("celu: alpha must not be 0");
    return detail::elementwise_forward(celu_def(alpha), x);
}

}  // namespace xg

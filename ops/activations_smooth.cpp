// ops/: the built-in elementwise activations, gelu to heaviside (definitions in activation_defs.hpp).
#include "activation_defs.hpp"

namespace xg {
using namespace activation_defs;

Tensor gelu(const Tensor& x, const std::string& approximate) {
    if (approximate == "none") return detail::elementwise_forward(gelu_def(), x);
    if (approximate == "tanh") return detail::elementwise_forward(gelu_tanh_def(), x);
    throw ValueError("gelu: approximate must be \"none\" or \"tanh\", got \"" + approximate + "\"");
}

Tensor silu(const Tensor& x) { return detail::elementwise_forward(silu_def(), x); }
Tensor swish(const Tensor& x, double beta) { return detail::elementwise_forward(swish_def("swish", beta), x); }
Tensor swish(const Tensor& x, const Tensor& beta) { return detail::param_forward(swish_param_def(), x, beta); }
Tensor mish(const Tensor& x) { return detail::elementwise_forward(mish_def(), x); }

Tensor softplus(const Tensor& x, double beta, double threshold) {
    if (beta == 0) throw ValueError("softplus: beta must not be 0");
    if (beta == 1) return detail::elementwise_forward(softplus_unit_def(threshold), x);
    return detail::elementwise_forward(softplus_def(beta, threshold), x);
}

Tensor softsign(const Tensor& x) { return detail::elementwise_forward(softsign_def(), x); }
Tensor hardsigmoid(const Tensor& x) { return detail::elementwise_forward(hardsigmoid_def(), x); }
Tensor hardswish(const Tensor& x) { return detail::elementwise_forward(hardswish_def(), x); }
Tensor log_sigmoid(const Tensor& x) { return detail::elementwise_forward(log_sigmoid_def(), x); }
Tensor tanhshrink(const Tensor& x) { return detail::elementwise_forward(tanhshrink_def(), x); }

Tensor softshrink(const Tensor& x, double lambd) {
    if (lambd < 0) throw ValueError("softshrink: lambd must be >= 0, got " + std::to_string(lambd));
    return detail::elementwise_forward(softshrink_def(lambd), x);
}

Tensor hardshrink(const Tensor& x, double lambd) {
    if (lambd < 0) throw ValueError("hardshrink: lambd must be >= 0, got " + std::to_string(lambd));
    return detail::elementwise_forward(hardshrink_def(lambd), x);
}

Tensor threshold(const Tensor& x, double th, double value) {
    return detail::elementwise_forward(threshold_def(th, value), x);
}

Tensor step(const Tensor& x, const StepOptions& options) { return step_impl("step", x, options); }

Tensor heaviside(const Tensor& x, double value) {
    StepOptions o;
    o.value_at_threshold = value;
    return step_impl("heaviside", x, o);
}

}  // namespace xg

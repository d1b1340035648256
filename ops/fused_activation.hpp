// ops/: internal: the elementwise activations that another op (linear) can apply inside its own pass
// over its output, built from the activation definitions of ops/activations.cpp (no formula is
// written twice). The kernels are serial over one contiguous run; the caller parallelises.
#pragma once
#include <cstdint>
#include <string>

#include "../autograd/tensor.hpp"

namespace xg::detail {

/// One activation as in-pass kernels plus its differentiable derivative op.
struct FusedActivation {
    const char* name;
    /// The derivative is a function of the output y = f(z) (relu, sigmoid, tanh); otherwise of the
    /// pre-activation z (gelu, silu), which the producer must then keep.
    bool saves_output;
    /// y[i] = f(z[i]) over n elements (y may alias z).
    void (*forward_f32)(const float* z, float* y, std::int64_t n);
    void (*forward_f64)(const double* z, double* y, std::int64_t n);
    /// out[i] = g[i] * f'(u[i]), u = y or z as saves_output says (out may alias g).
    void (*backward_f32)(const float* g, const float* u, float* out, std::int64_t n);
    void (*backward_f64)(const double* g, const double* u, double* out, std::int64_t n);
    /// g * f'(u) as the activation's own recorded op (relu_backward ...): differentiable to any order.
    Tensor (*backward_op)(const Tensor& g, const Tensor& u);
};

/// The fusable built-in activation `name` ("relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"),
/// or null.
const FusedActivation* fused_activation(const std::string& name);

}  // namespace xg::detail

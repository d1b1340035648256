// autograd/: the backward pass as functions (torch.autograd.grad and friends) and debugging aids.
#pragma once
#include <string>
#include <vector>

#include "tensor.hpp"

namespace xg {

/// Gradients of `outputs` with respect to `inputs` (like torch.autograd.grad). grad_outputs
/// default to 1 for one-element outputs. retain_graph defaults to create_graph. An input that
/// the outputs do not depend on throws GraphError unless allow_unused (then: undefined Tensor).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

/// Jacobian d func(x)_i / d x_j as a tensor of shape out.shape + x.shape.
Tensor jacobian(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, bool create_graph = false);
/// Hessian of a scalar function: shape x.shape + x.shape.
Tensor hessian(const std::function<Tensor(const Tensor&)>& func, const Tensor& x);
/// Vector-Jacobian product v^T J at x: returns (func(x), v^T J).
std::pair<Tensor, Tensor> vjp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph = false);
/// Jacobian-vector product J v at x (double-backward trick): returns (func(x), J v).
std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph = false);
/// Hessian-vector product H v of a scalar function at x: returns (func(x), H v).
std::pair<Tensor, Tensor> hvp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph = false);

/// The graph that produced `root` in Graphviz DOT: op names, shapes, leaves marked.
std::string to_dot(const Tensor& root);

/// True while anomaly mode is on (thread-local).
bool is_anomaly_enabled();
/// RAII: anomaly mode for its scope. The first op whose forward or backward produces NaN or inf
/// from finite inputs throws ValueError naming that op and where it was created.
class AnomalyGuard {
public:
    AnomalyGuard();
    ~AnomalyGuard();
    AnomalyGuard(const AnomalyGuard&) = delete;
    AnomalyGuard& operator=(const AnomalyGuard&) = delete;
private:
    bool prev_;
};

}  // namespace xg

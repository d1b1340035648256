// autograd/: the backward pass as functions (torch.autograd.grad and friends) and debugging aids.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tensor.hpp"

namespace xg {

/// Gradients of `outputs` with respect to `inputs` (like torch.autograd.grad). grad_outputs
/// default to 1 for one-element outputs. retain_graph defaults to create_graph. An input that
/// the outputs do not depend on throws GraphError unless allow_unused (then: undefined Tensor).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

/// Jacobian J[i..., j...] = d func(x)[i...] / d x[j...], shape func(x).shape + x.shape. With
/// create_graph the result is differentiable with respect to x (when x requires grad).
Tensor jacobian(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, bool create_graph = false);
/// Hessian H[i..., j...] = d^2 func(x) / d x[i...] d x[j...] of a one-value function, shape x.shape + x.shape.
Tensor hessian(const std::function<Tensor(const Tensor&)>& func, const Tensor& x);
/// Vector-Jacobian product at x: returns (func(x), v^T J) with v shaped like func(x) (optional
/// for a one-value function) and v^T J shaped like x.
std::pair<Tensor, Tensor> vjp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph = false);
/// Jacobian-vector product at x: returns (func(x), J v) with v shaped like x and J v shaped like
/// func(x), by the double-backward trick J v = d/du (u^T J v).
std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph = false);
/// Hessian-vector product of a one-value function at x: returns (func(x), H v = d/dx (grad f . v)).
std::pair<Tensor, Tensor> hvp(const std::function<Tensor(const Tensor&)>& func, const Tensor& x, const Tensor& v,
                              bool create_graph = false);

/// The graph that produced `root` in Graphviz DOT: one box per op (name, output shape and dtype),
/// leaves that require grad as green ellipses, inputs that need no gradient as grey "constant"
/// notes, edges from inputs to the ops that use them (numbered for ops with several inputs).
std::string to_dot(const Tensor& root);

/// Lets one backward pass run independent branches of the graph concurrently in TBB tasks when
/// each holds enough work (on by default; takes effect with more than one thread). Gradients that
/// reach a tensor from several branches are summed in the same fixed order as in a single-threaded
/// pass, so results are bit-identical at any thread count. Rules and hooks of different branches
/// may then run on different threads at once (hooks are serialised with each other).
void set_concurrent_backward(bool enabled);
/// Whether concurrent branches are enabled (see set_concurrent_backward).
bool is_concurrent_backward();

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

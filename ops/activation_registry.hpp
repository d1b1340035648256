// ops/: activations by name, so layers, the lab and the command line can pick any built-in or
// user-registered activation. Every built-in of ops/activations.hpp is registered (with its default
// parameters); user activations made with xg::activation (ops/user_activation.hpp) can be added.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg {

/// An activation as a function on tensors.
using ActivationFn = std::function<Tensor(const Tensor&)>;

/// What the registry knows about an activation beyond its tensor function (used by the lab).
struct ActivationInfo {
    ActivationFn fn;           ///< y = f(x), recorded in the graph
    bool elementwise = false;  ///< y[i] depends on x[i] only (false for softmax, glu, ...)
    /// The backward pass uses a hand-written derivative, so it can disagree with the automatic one.
    bool hand_written = false;
    /// f^(order)(x) for order 0, 1, 2 from forward-mode duals of the scalar function (not recorded
    /// in the graph); empty when the activation is not defined by a scalar function.
    std::function<Tensor(const Tensor&, int)> automatic_derivative;
    /// Conventions worth knowing: derivative at kinks, surrogate gradients, default parameters.
    std::string notes;
};

/// Registers (or replaces) an activation under `name`.
void register_activation(const std::string& name, ActivationFn fn);
/// Registers (or replaces) an activation with everything the lab can use.
void register_activation(const std::string& name, ActivationInfo info);
/// The activation registered under `name`; throws ValueError listing the known names.
ActivationFn get_activation(const std::string& name);
/// The full entry registered under `name`; throws ValueError listing the known names.
ActivationInfo activation_info(const std::string& name);
/// True when `name` is registered.
bool has_activation(const std::string& name);
/// Names of all registered activations, sorted.
std::vector<std::string> activation_names();

namespace detail {
/// The built-in activations with their registry entries (defined in activations.cpp).
std::vector<std::pair<std::string, ActivationInfo>> builtin_activations();
}  // namespace detail

}  // namespace xg

// ops/: activations by name, so layers, the lab and the command line can pick any built-in or
// user-registered activation.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg {

/// An activation as a function on tensors.
using ActivationFn = std::function<Tensor(const Tensor&)>;

/// Registers (or replaces) an activation under `name`.
void register_activation(const std::string& name, ActivationFn fn);
/// The activation registered under `name`; throws ValueError listing the known names.
ActivationFn get_activation(const std::string& name);
/// True when `name` is registered.
bool has_activation(const std::string& name);
/// Names of all registered activations, sorted.
std::vector<std::string> activation_names();

}  // namespace xg

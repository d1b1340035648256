// nn/: Module, the base of every layer: named parameters, buffers and submodules (recursive),
// train/eval mode, dtype conversion, state dicts and forward hooks. Built on the public API only.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg::nn {

/// Named tensors in a fixed order (parameters and buffers, as saved and loaded).
using StateDict = std::vector<std::pair<std::string, Tensor>>;

class Module;
/// Called after every forward of the module it is registered on, with its input and output.
using ForwardHook = std::function<void(Module& module, const Tensor& input, const Tensor& output)>;

/// Base of every layer. A layer keeps its parameters as public Tensor members and registers them
/// (register_parameter) so that the module tree can list, convert, save and load them.
/// forward() of the built-in layers keeps no per-call state (BatchNorm's running statistics and
/// Dropout's random draws aside), so one model may run several forwards at once on different threads.
class Module {
public:
    explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
    virtual ~Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;

    /// The computation of the layer.
    virtual Tensor forward(const Tensor& x) = 0;
    /// forward(x), then every forward hook.
    Tensor operator()(const Tensor& x);

    /// Layer type ("Linear", "Conv2d" ...).
    const std::string& type_name() const { return type_name_; }
    /// Constructor arguments shown when printing, e.g. "in_features=784, out_features=256, bias=true".
    virtual std::string extra_repr() const { return ""; }

    /// Trainable parameters of this module and (recurse) of all submodules, in registration order.
    std::vector<Tensor> parameters(bool recurse = true) const;
    /// Parameters with dotted names ("0.weight", "features.conv1.bias" ...).
    StateDict named_parameters(bool recurse = true) const;
    /// Buffers (running statistics ...) with dotted names.
    StateDict named_buffers(bool recurse = true) const;
    /// Direct submodules with their names.
    const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
    /// All submodules, recursively (depth first, parents before children), with dotted names; not this one.
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
    /// Number of scalar parameters (recursive).
    std::int64_t num_parameters() const;

    /// Training mode (on by default) for this module and all submodules; Dropout and BatchNorm depend on it.
    virtual void train(bool on = true);
    /// Evaluation mode: train(false).
    void eval() { train(false); }
    bool is_training() const { return training_; }

    /// Clears the gradient of every parameter (PyTorch's set_to_none).
    void zero_grad();
    /// Converts every parameter and floating buffer to dtype (new tensors: create optimizers after this).
    void to(Dtype dtype);

    /// Parameters and buffers by dotted name.
    StateDict state_dict() const;
    /// Copies values into the parameters and buffers (in place: optimizers keep working). With strict,
    /// missing and unexpected names are errors; a shape mismatch always is. Throws ValueError listing every
    /// problem; nothing is modified when there is one.
    void load_state_dict(const StateDict& state, bool strict = true);

    /// Registers hook(module, input, output), called after each forward; returns its id.
    std::size_t register_forward_hook(ForwardHook hook);
    /// Removes the hook with this id (unknown ids are ignored).
    void remove_forward_hook(std::size_t id);
    /// True when a forward hook is registered (containers then never fuse this module with another).
    bool has_forward_hooks() const { return !hooks_.empty(); }

    /// The module tree with each layer's arguments and parameter count, and the total.
    std::string to_string() const;

protected:
    /// Registers a parameter held in `slot` (a member of the layer); sets requires_grad.
    void register_parameter(const std::string& name, Tensor& slot);
    /// Registers a buffer held in `slot`: saved in the state dict, converted by to(), not trained.
    void register_buffer(const std::string& name, Tensor& slot);
    /// Registers a submodule and returns it.
    template <class M>
    std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
        add_child(name, module);
        return module;
    }

private:
    void add_child(const std::string& name, std::shared_ptr<Module> module);
    void collect(const std::string& prefix, bool params, bool buffers, bool recurse, StateDict& out) const;
    void print(std::ostream& os, int indent) const;

    std::string type_name_;
    bool training_ = true;
    std::vector<std::pair<std::string, Tensor*>> params_;
    std::vector<std::pair<std::string, Tensor*>> buffers_;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
    std::map<std::size_t, ForwardHook> hooks_;
    std::size_t next_hook_ = 0;
};

/// Prints module.to_string().
std::ostream& operator<<(std::ostream& os, const Module& module);

/// Formats an integer with thousands separators: 235146 -> "235,146".
std::string format_count(std::int64_t n);

}  // namespace xg::nn

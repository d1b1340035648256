// autograd/: Tensor, the user-facing handle to a value in the dynamic graph.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "../engine/array.hpp"

namespace xg {

class Node;
struct TensorImpl;

/// A cheap handle (shared_ptr) to a tensor: its value, and for autograd its gradient,
/// requires_grad flag and the graph node (grad_fn) that produced it.
class Tensor {
public:
    /// An undefined tensor.
    Tensor() = default;
    /// A leaf tensor holding `value`.
    explicit Tensor(Array value, bool requires_grad = false);

    bool defined() const { return impl_ != nullptr; }
    /// The underlying array (shares its buffer).
    const Array& array() const;
    const Shape& shape() const { return array().shape(); }
    Dtype dtype() const { return array().dtype(); }
    std::int64_t numel() const { return array().numel(); }
    std::size_t ndim() const { return array().ndim(); }
    /// Size of dimension `axis` (negative counts from the end).
    std::int64_t size(std::int64_t axis) const { return array().size(axis); }

    /// The single value of a one-element tensor, converted to T (throws ValueError otherwise).
    template <class T>
    T item() const;
    /// All values, flat in row-major order, converted to T.
    template <class T>
    std::vector<T> to_vector() const;
    /// Converted to dtype (differentiable; shares the buffer when the dtype is already right).
    Tensor to(Dtype dtype) const;

    // --- autograd -------------------------------------------------------------------------
    /// Sets requires_grad on a leaf (throws DtypeError for int64; turning it off on a non-leaf
    /// throws GraphError, turning it on is a no-op there since a non-leaf already requires grad).
    Tensor& requires_grad_(bool requires_grad = true);
    bool requires_grad() const;
    /// Accumulated gradient (undefined until a backward pass reaches this tensor).
    Tensor grad() const;
    /// Replaces the stored gradient (undefined clears it).
    void set_grad(const Tensor& grad);
    /// Clears the stored gradient (like PyTorch's zero_grad(set_to_none=True)).
    void zero_grad();
    /// A new leaf sharing this tensor's buffer, outside the graph.
    Tensor detach() const;
    /// True for tensors not produced by a recorded op.
    bool is_leaf() const;
    /// Keeps the gradient of this non-leaf tensor after backward (leaves always keep theirs).
    void retain_grad();
    bool retains_grad() const;
    /// Name of the op that produced this tensor ("" for leaves).
    std::string grad_fn_name() const;
    /// The graph node that produced this tensor (null for leaves).
    std::shared_ptr<Node> grad_fn() const;
    /// Back-propagates from this tensor: adds d this / d leaf (weighted by grad_output) into the
    /// .grad of every leaf that requires grad. grad_output defaults to 1 for a one-element tensor
    /// (GraphError otherwise, naming the op). Without retain_graph the saved values are freed and a
    /// second pass throws GraphError naming the op; create_graph records the pass itself (implies
    /// retain_graph) so the gradients can be differentiated again. Passes may run concurrently on
    /// several threads when their graphs share no node (leaves included).
    void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false, bool create_graph = false) const;
    /// Calls hook(grad) whenever a gradient for this tensor is computed; a defined return value
    /// replaces the gradient. Returns the hook's index.
    std::size_t register_hook(std::function<Tensor(const Tensor&)> hook);

    // --- in-place updates (for optimizers; not recorded in the graph) -----------------------
    // They throw GraphError on a tensor that requires grad while grad mode is on, and bump the
    // version counter so that backward through a saved copy of the old value throws.
    /// this += alpha * other (other broadcast to this shape).
    Tensor& add_(const Tensor& other, double alpha = 1.0);
    /// this -= alpha * other.
    Tensor& sub_(const Tensor& other, double alpha = 1.0);
    /// this *= other.
    Tensor& mul_(const Tensor& other);
    /// this *= value.
    Tensor& mul_(double value);
    /// this = 0.
    Tensor& zero_();
    /// this = value.
    Tensor& fill_(double value);
    /// this = other (broadcast and converted to this dtype).
    Tensor& copy_(const Tensor& other);

    /// Internal: the shared state.
    const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
    explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

private:
    std::shared_ptr<TensorImpl> impl_;
};

/// Shared state of a tensor.
struct TensorImpl {
    /// Autograd state of leaves and saved aliases only, allocated on first use.
    // On cache lines of its own: ops write it (the accumulator link) on every use of the leaf, and
    // leaves of different threads (DataParallel replicas) must not share a line.
    struct alignas(64) LeafState {
        std::weak_ptr<Node> grad_accumulator;   // the node that accumulates into `grad`
        std::weak_ptr<TensorImpl> alias_of;     // saved alias: the leaf it stands for
        std::weak_ptr<TensorImpl> saved_alias;  // leaf: its current saved alias, reused by later ops
        std::vector<std::function<Tensor(const Tensor&)>> hooks;
    };
    Array value;
    bool requires_grad = false;
    bool retains_grad = false;
    bool is_saved_alias = false;    // an alias of a leaf made by Saved (routes gradients to alias_of)
    bool output_saved = false;      // grad_fn saved this output (save_output): hand it the value on death
    std::shared_ptr<Node> grad_fn;  // null for leaves
    Tensor grad;
    std::unique_ptr<LeafState> leaf_state;
    /// The leaf state, allocated on first use.
    LeafState& leaf() {
        if (!leaf_state) leaf_state = std::make_unique<LeafState>();
        return *leaf_state;
    }
    ~TensorImpl();
};

/// Prints values (elided when large), shape, dtype and grad_fn, like PyTorch.
std::ostream& operator<<(std::ostream& os, const Tensor& t);

// --- grad mode ---------------------------------------------------------------------------------
/// True when ops are recorded in the graph (thread-local; on by default).
bool is_grad_enabled();
/// Sets grad mode for this thread.
void set_grad_enabled(bool enabled);
/// RAII: disables recording for its scope (thread-local).
class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool prev_;
};
/// RAII: enables recording for its scope (thread-local).
class EnableGradGuard {
public:
    EnableGradGuard();
    ~EnableGradGuard();
    EnableGradGuard(const EnableGradGuard&) = delete;
    EnableGradGuard& operator=(const EnableGradGuard&) = delete;

private:
    bool prev_;
};

}  // namespace xg

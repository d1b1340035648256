// autograd/: graph nodes and the one way ops record themselves (make_result).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../engine/allocator.hpp"
#include "tensor.hpp"

namespace xg {

namespace detail {
/// Default work estimate (elements an op's output and inputs hold) from which a node is worth a
/// task of its own when backward runs independent branches concurrently (see set_concurrent_backward).
/// Measured (BRANCH_threshold, 2 threads): two chains of 96^3 matmuls (27,648 elements per node)
/// lose 15% run concurrently, of 128^3 (49,152) gain 26%.
inline constexpr std::int64_t kHeavyNodeCost = std::int64_t(1) << 15;
/// The threshold in use (kHeavyNodeCost unless changed); it is applied when a node is recorded.
std::int64_t heavy_node_cost();
/// Changes the threshold for nodes recorded from now on (benchmarks measure it with this).
void set_heavy_node_cost(std::int64_t elements);

/// A fixed-size array with inline room for N elements (most ops have one or two inputs): no heap
/// allocation per node for its edges. Sized once with resize().
template <class T, std::size_t N>
class InlineVec {
public:
    void resize(std::size_t n) {
        size_ = static_cast<std::uint32_t>(n);
        if (n > N) heap_ = std::make_unique<T[]>(n);
    }
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T* begin() { return size_ > N ? heap_.get() : inline_.data(); }
    T* end() { return begin() + size_; }
    const T* begin() const { return size_ > N ? heap_.get() : inline_.data(); }
    const T* end() const { return begin() + size_; }
    T& operator[](std::size_t i) { return begin()[i]; }
    const T& operator[](std::size_t i) const { return begin()[i]; }

private:
    std::array<T, N> inline_{};
    std::unique_ptr<T[]> heap_;
    std::uint32_t size_ = 0;
};
}  // namespace detail

/// A graph node: the backward rule of one recorded op, with edges to the nodes of its inputs.
class Node : public std::enable_shared_from_this<Node> {
public:
    /// One input of the op: the node that receives its gradient (null when the input needs no
    /// gradient) and the input's shape and dtype, to check and un-broadcast the gradient returned
    /// for it. The shape is stored only when it differs from the output's (a broadcast input), in
    /// a pool block of its own: kept inline it made every node 96 bytes larger (two inputs inline).
    struct Input {
        /// Deletes a Shape made by make_own_shape.
        struct ShapeDelete {
            void operator()(const Shape* s) const noexcept;
        };
        std::shared_ptr<Node> fn;
        std::unique_ptr<const Shape, ShapeDelete> own_shape;  // null: the input had the output's shape
        Dtype dtype = Dtype::f32;
        /// The input's shape, given the output's.
        const Shape& shape(const Shape& output_shape) const { return own_shape ? *own_shape : output_shape; }
        /// Stores `s` as the input's own shape.
        void set_own_shape(const Shape& s);
    };
    /// State that few nodes need, allocated on first use.
    struct Extras {
        std::vector<std::function<Tensor(const Tensor&)>> pre_hooks;  // hooks of the output tensor
        std::weak_ptr<TensorImpl> retain_target;                      // output tensor with retain_grad()
        std::vector<void*> creation_frames;                           // anomaly mode: return addresses at creation
        Array adopted_output;  // save_output: the output's value after its tensor died
    };

    explicit Node(std::string name) : name_(std::move(name)) {}
    virtual ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    /// Op name, e.g. "matmul" (shown in grad_fn_name, DOT export and errors).
    const std::string& name() const { return name_; }
    /// The op's inputs in argument order.
    const detail::InlineVec<Input, 2>& inputs() const { return inputs_; }
    /// Gradients for each input given the gradient of the output. `last_use`: the pass releases
    /// the node right after (no retain_graph), so the rule may consume what the node saved.
    virtual std::vector<Tensor> apply(const Tensor& grad_output, bool last_use) = 0;
    /// Frees saved values; a later apply() throws GraphError (when something was freed).
    virtual void release() {}
    /// True for the node that accumulates a leaf's gradient into its .grad.
    bool is_accumulator() const { return is_accumulator_; }
    /// The leaf of an accumulator node (null for op nodes or when the leaf was destroyed).
    virtual std::shared_ptr<TensorImpl> leaf() const { return nullptr; }
    /// Creation order (later nodes run first when several are ready).
    std::uint64_t sequence_nr() const { return sequence_nr_; }
    /// Where the node was created, as a symbolised stack trace (recorded in anomaly mode only).
    std::string creation_trace() const;

    // Engine state, hot during backward: kept together at the front of the node.
    std::uint64_t visit_epoch_ = 0;  // pass that last discovered this node
    std::uint64_t sequence_nr_ = 0;  // greater than every input's: decreasing order is topological
    Tensor grad_buffer_;             // gradient summed so far in the running pass
    bool buffer_owned_ = false;      // grad_buffer_ was allocated by the engine: update in place
    bool needed_ = false;            // grad(): a captured node is at or below this one
    bool is_capture_ = false;        // grad(): this node's gradient is returned
    bool is_accumulator_ = false;
    bool has_hooks_ = false;        // extras: pre_hooks or retain_target is set
    bool heavy_ = false;            // this node or one below it does enough work to be worth a task of its own
    bool fork_ = false;             // at or below this node, two inputs of a node lead to separate heavy work
    std::uint64_t heavy_top_ = 0;   // 1 + sequence number of the nearest heavy node or fork at or below (0: none)
    std::uint32_t pass_index_ = 0;  // concurrent pass: index of this node's slot

    // Recording state.
    detail::InlineVec<Input, 2> inputs_;
    std::unique_ptr<Extras> extras_;
    /// The extras, allocated on first use.
    Extras& extras() {
        if (!extras_) extras_ = std::make_unique<Extras>();
        return *extras_;
    }

private:
    std::string name_;
};

/// Rule of a recorded op: input gradients from the output gradient `g` (and the output `y`
/// when the op was recorded with save_output). Return an undefined Tensor for an input that gets
/// no gradient. Written with differentiable ops, so create_graph gives higher derivatives.
using BackwardRule = std::function<std::vector<Tensor>(const Tensor& g, const Tensor& y)>;

/// A tensor saved for backward, with the version it had: get() throws GraphError naming the op
/// when the tensor was modified in place since. A leaf that requires grad is held through an
/// alias that shares its buffer but not its .grad, so a gradient graph stored in the leaf's
/// .grad (backward with create_graph) does not form a reference cycle with the leaf.
class Saved {
public:
    Saved() = default;
    Saved(const Tensor& t, const char* op);
    /// The saved tensor; throws GraphError when it was modified in place after saving.
    const Tensor& get() const;

private:
    Tensor tensor_;
    std::uint64_t version_ = 0;
    const char* op_ = "";
};

/// True when an op on these inputs would be recorded (grad mode on, some input requires grad).
bool needs_record(const std::vector<Tensor>& inputs);
/// Same for a braced list of inputs, without copying them.
bool needs_record(std::initializer_list<std::reference_wrapper<const Tensor>> inputs);

namespace detail {

/// A recorded op node; the rule itself is stored by RuleNode.
class OpNode : public Node {
public:
    using Node::Node;
    std::vector<Tensor> apply(const Tensor& grad_output, bool last_use) final;
    void release() final;
    /// Called by the output tensor's destructor: keeps its value for the rule (save_output).
    void adopt_output(Array&& value) { extras().adopted_output = std::move(value); }

    bool save_output_ = false;
    bool released_ = false;
    bool holds_state_ = true;           // release() frees something (captures or the output)
    std::weak_ptr<TensorImpl> output_;  // save_output: the output tensor while it lives
    std::uint64_t saved_version_ = 0;

protected:
    virtual std::vector<Tensor> call_rule(const Tensor& g, const Tensor& y, bool last_use) = 0;
    virtual void free_rule() = 0;
};

/// An op node holding its rule inline (one allocation per node, no std::function).
template <class R>
class RuleNode final : public OpNode {
public:
    template <class F>
    RuleNode(const char* name, F&& rule) : OpNode(name), rule_(std::in_place, std::forward<F>(rule)) {
        holds_state_ = !std::is_empty_v<R>;
    }

protected:
    /// A rule that takes a third argument, `bool last_use`, learns that the node is released after
    /// it (see Node::apply) and may then write its result into a buffer it captured.
    std::vector<Tensor> call_rule(const Tensor& g, const Tensor& y, bool last_use) override {
        if constexpr (std::is_invocable_v<R&, const Tensor&, const Tensor&, bool>)
            return (*rule_)(g, y, last_use);
        else
            return (*rule_)(g, y);
    }
    void free_rule() override { rule_.reset(); }

private:
    std::optional<R> rule_;
};

/// Number of backward passes that ran branches concurrently so far (for tests and benchmarks).
std::uint64_t concurrent_pass_count();

/// Anomaly mode's check of a forward result (throws ValueError naming op).
void check_forward_anomaly(const char* op, const Array& value, const Tensor* const* inputs, std::size_t n);
bool anomaly_enabled_fast();
/// Wires a new node to its inputs and returns the output tensor.
Tensor record(std::shared_ptr<OpNode> node, Array value, const Tensor* const* inputs, std::size_t n, bool save_output);

}  // namespace detail

/// Wraps a forward result: when grad mode is on and an input requires grad, records a node
/// named `name` with `rule`; otherwise returns a plain tensor. With save_output the rule receives
/// the output (held without a reference cycle).
Tensor make_result(const char* name, Array value, const std::vector<Tensor>& inputs, BackwardRule rule,
                   bool save_output = false);

/// make_result for a braced list of inputs and a lambda rule (stored inline in the node).
template <class Rule>
Tensor make_result(const char* name, Array value, std::initializer_list<std::reference_wrapper<const Tensor>> inputs,
                   Rule&& rule, bool save_output = false) {
    constexpr std::size_t kMax = 8;
    const Tensor* ptrs[kMax];
    std::vector<const Tensor*> many;
    const Tensor* const* p = ptrs;
    if (inputs.size() <= kMax) {
        std::size_t i = 0;
        for (const Tensor& t : inputs) ptrs[i++] = &t;
    } else {
        for (const Tensor& t : inputs) many.push_back(&t);
        p = many.data();
    }
    if (detail::anomaly_enabled_fast()) detail::check_forward_anomaly(name, value, p, inputs.size());
    if (!needs_record(inputs)) return Tensor(std::move(value));
    auto node = detail::make_pooled<detail::RuleNode<std::decay_t<Rule>>>(name, std::forward<Rule>(rule));
    return detail::record(std::move(node), std::move(value), p, inputs.size(), save_output);
}

}  // namespace xg

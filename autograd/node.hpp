// autograd/: graph nodes and the one way ops record themselves (make_result).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace xg {

/// A graph node: the backward rule of one recorded op, with edges to the nodes of its inputs.
class Node : public std::enable_shared_from_this<Node> {
public:
    /// Shape and dtype of one input, to check and un-broadcast the gradient returned for it.
    struct InputMeta {
        Shape shape;
        Dtype dtype;
    };
    /// Where the gradient of one input goes (fn is null when that input needs no gradient).
    struct Edge {
        std::shared_ptr<Node> fn;
    };

    explicit Node(std::string name) : name_(std::move(name)) {}
    virtual ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    /// Op name, e.g. "matmul" (shown in grad_fn_name, DOT export and errors).
    const std::string& name() const { return name_; }
    const std::vector<Edge>& next_edges() const { return next_; }
    const std::vector<InputMeta>& input_meta() const { return meta_; }
    /// Gradients for each input given the gradient of the output.
    virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
    /// Frees saved values; a later apply() throws GraphError.
    virtual void release() {}
    /// Creation order (later nodes run first when several are ready).
    std::uint64_t sequence_nr() const { return sequence_nr_; }
    /// Where the node was created (filled in anomaly mode only).
    const std::string& creation_trace() const { return creation_trace_; }

    // Engine state, used by the backward pass only.
    std::vector<Edge> next_;
    std::vector<InputMeta> meta_;
    std::vector<std::function<Tensor(const Tensor&)>> pre_hooks_;  // hooks of the output tensor
    std::weak_ptr<TensorImpl> retain_target_;                       // output tensor with retain_grad()
    std::uint64_t sequence_nr_ = 0;
    std::string creation_trace_;
    Tensor grad_buffer_;
    int dependencies_ = 0;

private:
    std::string name_;
};

/// Rule of a recorded op: input gradients from the output gradient `g` (and the output `y`
/// when the op was recorded with save_output). Return an undefined Tensor for an input that gets
/// no gradient. Written with differentiable ops, so create_graph gives higher derivatives.
using BackwardRule = std::function<std::vector<Tensor>(const Tensor& g, const Tensor& y)>;

/// A tensor saved for backward, with the version it had: get() throws GraphError naming the op
/// when the tensor was modified in place since.
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

/// Wraps a forward result: when grad mode is on and an input requires grad, records a node
/// named `name` with `rule`; otherwise returns a plain tensor. With save_output the rule receives
/// the output (reconstructed without a reference cycle).
Tensor make_result(const char* name, Array value, const std::vector<Tensor>& inputs, BackwardRule rule,
                   bool save_output = false);
/// True when an op on these inputs would be recorded (grad mode on, some input requires grad).
bool needs_record(const std::vector<Tensor>& inputs);

}  // namespace xg

// The backward pass: dependency counting over the recorded graph, iterative (no recursion), with
// gradients fully accumulated at a node before its rule runs.
#include <execinfo.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <cmath>
#include <cstdlib>
#include <cxxabi.h>
#include <unordered_map>
#include <unordered_set>

#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/shape_ops.hpp"
#include "grad.hpp"
#include "node.hpp"

namespace xg {

// --- iterative teardown ----------------------------------------------------------------------------
namespace {
// Destroying the last handle of a long chain would recurse once per node (node -> edge -> node ...)
// and overflow the stack at ~100k nodes. Every node reference that dies inside a node or tensor
// destructor goes through this thread-local queue and is released by the outermost destructor.
struct ReleaseQueue {
    std::vector<std::shared_ptr<Node>> pending;
    bool draining = false;
};
thread_local ReleaseQueue t_release;

void release_later(std::shared_ptr<Node>&& node) {
    if (!node) return;
    t_release.pending.push_back(std::move(node));
    if (t_release.draining) return;
    t_release.draining = true;
    while (!t_release.pending.empty()) {
        std::shared_ptr<Node> n = std::move(t_release.pending.back());
        t_release.pending.pop_back();
        n.reset();  // may push this node's own edges
    }
    t_release.draining = false;
}
}  // namespace

Node::~Node() {
    for (auto& e : next_) release_later(std::move(e.fn));
    // The gradient buffer may hold a graph of its own (create_graph).
    if (grad_buffer_.defined()) {
        Tensor g = std::move(grad_buffer_);
    }
}

TensorImpl::~TensorImpl() { release_later(std::move(grad_fn)); }

// --- anomaly mode -------------------------------------------------------------------------------
namespace {
thread_local bool t_anomaly = false;
std::atomic<std::uint64_t> g_sequence{0};

std::string current_trace() {
    void* frames[32];
    const int n = ::backtrace(frames, 32);
    char** symbols = ::backtrace_symbols(frames, n);
    std::string r;
    for (int i = 2; i < n && symbols; ++i) {
        std::string s = symbols[i];
        // Demangle "binary(mangled+0x12)".
        const auto open = s.find('('), plus = s.find('+', open == std::string::npos ? 0 : open);
        if (open != std::string::npos && plus != std::string::npos && plus > open + 1) {
            int status = 0;
            const std::string mangled = s.substr(open + 1, plus - open - 1);
            char* dem = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
            if (status == 0 && dem) s = s.substr(0, open + 1) + dem + s.substr(plus);
            std::free(dem);
        }
        r += "    " + s + "\n";
    }
    std::free(symbols);
    return r;
}

bool has_nonfinite(const Array& a) {
    if (!is_floating(a.dtype())) return false;
    return detail::dispatch_floating(a.dtype(), "anomaly", [&]<class T>() {
        const T* p = a.data<T>();
        for (std::int64_t i = 0; i < a.numel(); ++i)
            if (!std::isfinite(p[i])) return true;
        return false;
    });
}
}  // namespace

bool is_anomaly_enabled() { return t_anomaly; }
AnomalyGuard::AnomalyGuard() : prev_(t_anomaly) { t_anomaly = true; }
AnomalyGuard::~AnomalyGuard() { t_anomaly = prev_; }

// --- recording ------------------------------------------------------------------------------------
namespace {

class OpNode final : public Node {
public:
    OpNode(const char* name, BackwardRule rule) : Node(name), rule_(std::move(rule)) {}
    std::vector<Tensor> apply(const Tensor& g) override {
        if (released_)
            throw GraphError(name() + ": trying to backward through the graph a second time (its saved values "
                             "were freed after the first backward); pass retain_graph=true the first time");
        Tensor y;
        if (save_output_) {
            if (saved_output_.version() != saved_version_)
                throw GraphError(name() + ": its output (shape " + shape_str(saved_output_.shape()) +
                                 "), needed for the gradient, was modified by an in-place operation (version " +
                                 std::to_string(saved_output_.version()) + ", expected " +
                                 std::to_string(saved_version_) + ")");
            auto impl = std::make_shared<TensorImpl>();
            impl->value = saved_output_;
            impl->grad_fn = shared_from_this();
            y = Tensor(std::move(impl));
        }
        return rule_(g, y);
    }
    void release() override {
        rule_ = nullptr;
        saved_output_ = Array();
        released_ = true;
    }
    BackwardRule rule_;
    bool save_output_ = false;
    bool released_ = false;
    Array saved_output_;
    std::uint64_t saved_version_ = 0;
};

// Accumulates the gradient of a leaf into its .grad.
class AccumulateGrad final : public Node {
public:
    explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}
    std::vector<Tensor> apply(const Tensor&) override { return {}; }
    std::shared_ptr<TensorImpl> leaf_;
};

std::shared_ptr<Node> grad_accumulator(const std::shared_ptr<TensorImpl>& leaf) {
    if (auto acc = leaf->grad_accumulator.lock()) return acc;
    auto acc = std::make_shared<AccumulateGrad>(leaf);
    acc->sequence_nr_ = g_sequence++;
    leaf->grad_accumulator = acc;
    return acc;
}

// The node that receives the gradient of t (its grad_fn, or its accumulator for a leaf).
std::shared_ptr<Node> gradient_edge(const Tensor& t) {
    const auto& impl = t.impl();
    if (impl->grad_fn) return impl->grad_fn;
    if (impl->requires_grad) return grad_accumulator(impl);
    return nullptr;
}

}  // namespace

bool needs_record(const std::vector<Tensor>& inputs) {
    if (!is_grad_enabled()) return false;
    for (const auto& t : inputs)
        if (t.defined() && t.requires_grad()) return true;
    return false;
}

Tensor make_result(const char* name, Array value, const std::vector<Tensor>& inputs, BackwardRule rule,
                   bool save_output) {
    if (t_anomaly && has_nonfinite(value)) {
        bool inputs_finite = true;
        for (const auto& t : inputs)
            if (t.defined() && has_nonfinite(t.array())) inputs_finite = false;
        if (inputs_finite)
            throw ValueError(std::string(name) + ": forward produced NaN or inf (output shape " +
                             shape_str(value.shape()) + ") from finite inputs; created at:\n" + current_trace());
    }
    if (!needs_record(inputs)) return Tensor(std::move(value));
    auto node = std::make_shared<OpNode>(name, std::move(rule));
    node->next_.reserve(inputs.size());
    node->meta_.reserve(inputs.size());
    for (const auto& t : inputs) {
        node->next_.push_back({t.defined() ? gradient_edge(t) : nullptr});
        node->meta_.push_back({t.defined() ? t.shape() : Shape{}, t.defined() ? t.dtype() : Dtype::f32});
    }
    node->sequence_nr_ = g_sequence++;
    if (t_anomaly) node->creation_trace_ = current_trace();
    auto impl = std::make_shared<TensorImpl>();
    impl->value = std::move(value);
    if (save_output) {
        node->save_output_ = true;
        node->saved_output_ = impl->value;
        node->saved_version_ = impl->value.version();
    }
    impl->grad_fn = std::move(node);
    return Tensor(std::move(impl));
}

Saved::Saved(const Tensor& t, const char* op) : tensor_(t), version_(t.defined() ? t.array().version() : 0), op_(op) {}

const Tensor& Saved::get() const {
    if (tensor_.defined() && tensor_.array().version() != version_)
        throw GraphError(std::string(op_) + ": a tensor of shape " + shape_str(tensor_.shape()) +
                         " needed for the gradient was modified by an in-place operation (version " +
                         std::to_string(tensor_.array().version()) + ", expected " + std::to_string(version_) + ")");
    return tensor_;
}

// --- the backward pass -------------------------------------------------------------------------
namespace {

// Brings a rule's gradient to the input's shape and dtype (un-broadcasting with sum_to).
Tensor conform(const Tensor& g, const Node::InputMeta& meta, const Node& node, std::size_t i) {
    Tensor r = g;
    if (r.shape() != meta.shape) {
        bool ok = true;
        try {
            (void)broadcast_shape(r.shape(), meta.shape, "backward");
            ok = broadcast_shape(r.shape(), meta.shape, "backward") == r.shape();
        } catch (const ShapeError&) {
            ok = false;
        }
        if (!ok)
            throw GraphError(node.name() + ": backward returned a gradient of shape " + shape_str(r.shape()) +
                             " for input " + std::to_string(i) + " of shape " + shape_str(meta.shape));
        r = sum_to(r, meta.shape);
    }
    if (r.dtype() != meta.dtype) r = r.to(meta.dtype);
    return r;
}

void accumulate(Tensor& buffer, Tensor&& g) {
    if (!buffer.defined())
        buffer = std::move(g);
    else
        buffer = add(buffer, g);
}

struct BackwardTask {
    std::vector<Tensor> roots;
    std::vector<Tensor> root_grads;
    bool retain_graph = false;
    bool create_graph = false;
    // grad() mode: capture the gradient reaching these nodes instead of accumulating into leaves.
    std::vector<Node*> capture_nodes;
    std::vector<Tensor>* captured = nullptr;
};

void run(BackwardTask& task) {
    // 1. Root nodes and their gradients.
    std::vector<std::shared_ptr<Node>> root_nodes;
    for (std::size_t i = 0; i < task.roots.size(); ++i) {
        const Tensor& r = task.roots[i];
        if (!r.requires_grad())
            throw GraphError("backward: output " + std::to_string(i) + " (shape " + shape_str(r.shape()) +
                             ") does not require grad and has no grad_fn");
        root_nodes.push_back(gradient_edge(r));
    }
    // 2. Dependency counts over the reachable graph (iterative DFS).
    std::vector<Node*> visited;
    {
        std::vector<Node*> stack;
        std::unordered_set<Node*> seen;
        for (auto& n : root_nodes)
            if (seen.insert(n.get()).second) stack.push_back(n.get());
        while (!stack.empty()) {
            Node* n = stack.back();
            stack.pop_back();
            visited.push_back(n);
            for (auto& e : n->next_) {
                if (!e.fn) continue;
                ++e.fn->dependencies_;
                if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
            }
        }
    }
    // In grad() mode, only nodes with a captured node at or below them need to run.
    std::unordered_set<Node*> needed;
    const bool capture_mode = task.captured != nullptr;
    if (capture_mode) {
        std::unordered_set<Node*> capture_set(task.capture_nodes.begin(), task.capture_nodes.end());
        // Reverse topological order: a node after all its parents; process children first.
        std::vector<Node*> order;
        {
            std::unordered_map<Node*, int> deps;
            for (Node* n : visited) deps[n] = n->dependencies_;
            std::vector<Node*> ready;
            for (auto& n : root_nodes)
                if (deps[n.get()] == 0) ready.push_back(n.get());
            std::unordered_set<Node*> pushed(ready.begin(), ready.end());
            while (!ready.empty()) {
                Node* n = ready.back();
                ready.pop_back();
                order.push_back(n);
                for (auto& e : n->next_)
                    if (e.fn && --deps[e.fn.get()] == 0 && pushed.insert(e.fn.get()).second) ready.push_back(e.fn.get());
            }
        }
        for (auto it = order.rbegin(); it != order.rend(); ++it) {
            Node* n = *it;
            bool need = capture_set.count(n) > 0;
            for (auto& e : n->next_) need |= e.fn && needed.count(e.fn.get());
            if (need) needed.insert(n);
        }
    }
    // 3. Seed the roots.
    for (std::size_t i = 0; i < root_nodes.size(); ++i) {
        Tensor g = task.root_grads[i];
        accumulate(root_nodes[i]->grad_buffer_, std::move(g));
    }
    std::vector<std::shared_ptr<Node>> ready;
    {
        std::unordered_set<Node*> pushed;
        for (auto& n : root_nodes)
            if (n->dependencies_ == 0 && pushed.insert(n.get()).second) ready.push_back(n);
    }
    // Resets engine state of every visited node, also when a rule throws.
    struct Cleanup {
        std::vector<Node*>& nodes;
        ~Cleanup() {
            for (Node* n : nodes) {
                n->dependencies_ = 0;
                n->grad_buffer_ = Tensor();
            }
        }
    } cleanup{visited};

    std::optional<NoGradGuard> no_grad;
    std::optional<EnableGradGuard> enable_grad;
    if (task.create_graph) enable_grad.emplace(); else no_grad.emplace();

    // 4. Run nodes whose gradient is complete, latest-created first among the ready ones.
    while (!ready.empty()) {
        auto it = std::max_element(ready.begin(), ready.end(),
                                   [](const auto& a, const auto& b) { return a->sequence_nr_ < b->sequence_nr_; });
        std::shared_ptr<Node> node = std::move(*it);
        *it = std::move(ready.back());
        ready.pop_back();
        Tensor g = std::move(node->grad_buffer_);
        node->grad_buffer_ = Tensor();
        if (capture_mode && !needed.count(node.get())) continue;
        if (!g.defined()) {
            // Every path into this node returned no gradient: release its inputs unvisited.
            for (auto& e : node->next_)
                if (e.fn && --e.fn->dependencies_ == 0) ready.push_back(e.fn);
            continue;
        }

        for (auto& hook : node->pre_hooks_) {
            Tensor r = hook(g);
            if (r.defined()) g = r;
        }
        if (auto target = node->retain_target_.lock()) {
            Tensor gg = task.create_graph ? g : g.detach();
            target->grad = target->grad.defined() ? add(target->grad, gg) : gg;
        }
        if (capture_mode) {
            for (std::size_t k = 0; k < task.capture_nodes.size(); ++k)
                if (task.capture_nodes[k] == node.get()) (*task.captured)[k] = g;
        }
        if (auto* acc = dynamic_cast<AccumulateGrad*>(node.get())) {
            if (capture_mode) continue;
            auto& leaf = *acc->leaf_;
            for (auto& hook : leaf.hooks) {
                Tensor r = hook(g);
                if (r.defined()) g = r;
            }
            Tensor gg = task.create_graph ? g : g.detach();
            leaf.grad = leaf.grad.defined() ? add(leaf.grad, gg) : gg;
            continue;
        }
        std::vector<Tensor> grads = node->apply(g);
        if (!task.retain_graph) node->release();
        if (grads.size() != node->next_.size())
            throw GraphError(node->name() + ": backward returned " + std::to_string(grads.size()) +
                             " gradients for " + std::to_string(node->next_.size()) + " inputs");
        if (t_anomaly) {
            const bool in_bad = has_nonfinite(g.array());
            for (auto& gi : grads)
                if (!in_bad && gi.defined() && has_nonfinite(gi.array()))
                    throw ValueError(node->name() + ": backward produced NaN or inf from a finite gradient; "
                                     "the op was created at:\n" + node->creation_trace_);
        }
        for (std::size_t i = 0; i < grads.size(); ++i) {
            auto& e = node->next_[i];
            if (!e.fn) continue;
            if (grads[i].defined()) accumulate(e.fn->grad_buffer_, conform(grads[i], node->meta_[i], *node, i));
            if (--e.fn->dependencies_ == 0) ready.push_back(e.fn);
        }
    }
}

Tensor default_grad(const Tensor& out, const char* op) {
    if (out.numel() != 1)
        throw GraphError(std::string(op) + ": grad can be implicitly created only for one-element outputs; "
                         "this output has shape " + shape_str(out.shape()) + " (pass grad_output)");
    return Tensor(engine::full(out.shape(), out.dtype(), 1.0));
}

}  // namespace

void Tensor::backward(const Tensor& grad_output, bool retain_graph, bool create_graph) const {
    if (!defined()) throw ValueError("backward: the tensor is undefined");
    BackwardTask task;
    task.roots = {*this};
    Tensor g = grad_output.defined() ? grad_output : default_grad(*this, "backward");
    if (g.shape() != shape())
        throw ShapeError("backward: grad_output of shape " + shape_str(g.shape()) + " for an output of shape " +
                         shape_str(shape()));
    task.root_grads = {g.dtype() == dtype() ? g : g.to(dtype())};
    task.retain_graph = retain_graph || create_graph;
    task.create_graph = create_graph;
    run(task);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph,
                         bool allow_unused) {
    if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
        throw ValueError("grad: got " + std::to_string(grad_outputs.size()) + " grad_outputs for " +
                         std::to_string(outputs.size()) + " outputs");
    BackwardTask task;
    task.roots = outputs;
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        Tensor g = grad_outputs.empty() || !grad_outputs[i].defined() ? default_grad(outputs[i], "grad")
                                                                       : grad_outputs[i];
        if (g.shape() != outputs[i].shape())
            throw ShapeError("grad: grad_output " + std::to_string(i) + " has shape " + shape_str(g.shape()) +
                             " but the output has shape " + shape_str(outputs[i].shape()));
        task.root_grads.push_back(g.dtype() == outputs[i].dtype() ? g : g.to(outputs[i].dtype()));
    }
    std::vector<std::shared_ptr<Node>> keep;  // keeps accumulators alive during the pass
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const Tensor& t = inputs[i];
        if (!t.defined() || !t.requires_grad())
            throw GraphError("grad: input " + std::to_string(i) + " does not require grad");
        keep.push_back(gradient_edge(t));
        task.capture_nodes.push_back(keep.back().get());
    }
    std::vector<Tensor> result(inputs.size());
    task.captured = &result;
    task.retain_graph = retain_graph || create_graph;
    task.create_graph = create_graph;
    run(task);
    for (std::size_t i = 0; i < result.size(); ++i) {
        if (!result[i].defined() && !allow_unused)
            throw GraphError("grad: input " + std::to_string(i) + " (shape " + shape_str(inputs[i].shape()) +
                             ") was not used to compute the outputs (pass allow_unused=true)");
        if (result[i].defined() && !create_graph) result[i] = result[i].detach();
    }
    return result;
}

}  // namespace xg

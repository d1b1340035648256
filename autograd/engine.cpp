// The backward pass: dependency counting over the recorded graph, iterative (no recursion), with
// gradients fully accumulated at a node before its rule runs. Also recording (make_result),
// saved tensors, iterative teardown and anomaly mode.
#include <cxxabi.h>
#include <dlfcn.h>
#include <elf.h>
#include <execinfo.h>
#include <link.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>

#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "../engine/parallel.hpp"
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
    if (node.use_count() > 1) {  // not the last reference: dropping it destroys nothing
        node.reset();
        return;
    }
    ReleaseQueue& q = t_release;
    q.pending.push_back(std::move(node));
    if (q.draining) return;
    q.draining = true;
    while (!q.pending.empty()) {
        std::shared_ptr<Node> n = std::move(q.pending.back());
        q.pending.pop_back();
        n.reset();  // may push this node's own edges
    }
    q.draining = false;
}
}  // namespace

Node::~Node() {
    for (auto& in : inputs_) release_later(std::move(in.fn));
}

TensorImpl::~TensorImpl() {
    if (output_saved && grad_fn && grad_fn.use_count() > 1) {
        // The node still needs this output for its rule: hand it the value (no copy).
        auto& op = static_cast<detail::OpNode&>(*grad_fn);
        if (!op.released_) op.adopt_output(std::move(value));
    }
    release_later(std::move(grad_fn));
}

// --- anomaly mode -------------------------------------------------------------------------------
namespace {
thread_local bool t_anomaly = false;
thread_local int t_rule_depth = 0;  // > 0 while a backward rule runs: its ops are checked as the rule's output
thread_local std::uint64_t t_sequence = 0;
std::atomic<std::uint64_t> g_epoch{0};

std::vector<void*> capture_frames() {
    void* frames[64];
    const int n = ::backtrace(frames, 64);
    return std::vector<void*>(frames + 1, frames + std::max(n, 1));
}

std::string demangle(const char* s) {
    int status = 0;
    char* d = abi::__cxa_demangle(s, nullptr, nullptr, &status);
    std::string r = status == 0 && d ? d : s;
    std::free(d);
    return r;
}

// "function at file:line" for each frame: dladdr for the object and exported symbols, then
// addr2line (when installed) for static functions and line numbers.
std::vector<std::string> symbolize(const std::vector<void*>& frames) {
    struct Info {
        std::string object, function, location;
        std::uintptr_t offset = 0;
    };
    std::vector<Info> info(frames.size());
    std::map<std::string, std::vector<std::size_t>> by_object;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        Dl_info dl{};
        const auto addr = reinterpret_cast<std::uintptr_t>(frames[i]) - 1;  // inside the call instruction
        if (::dladdr(frames[i], &dl) && dl.dli_fname) {
            info[i].object = dl.dli_fname;
            if (dl.dli_sname) info[i].function = demangle(dl.dli_sname);
            const auto* ehdr = static_cast<const ElfW(Ehdr)*>(dl.dli_fbase);
            const bool relocatable = ehdr && ehdr->e_type == ET_DYN;
            info[i].offset = relocatable ? addr - reinterpret_cast<std::uintptr_t>(dl.dli_fbase) : addr;
            by_object[info[i].object].push_back(i);
        }
    }
    // LLVM's addr2line first: binutils 2.40's took 8-19 s a lookup in the clang-built test binary
    // (320 MB), LLVM's 0.5 s; both print the same two lines per address.
    static const char* const addr2line = ::access("/usr/bin/llvm-addr2line", X_OK) == 0 ? "/usr/bin/llvm-addr2line"
                                         : ::access("/usr/bin/addr2line", X_OK) == 0    ? "/usr/bin/addr2line"
                                                                                        : nullptr;
    if (addr2line) {
        for (auto& [object, idx] : by_object) {
            if (object.find('\'') != std::string::npos) continue;
            std::string cmd = std::string(addr2line) + " -C -f -e '" + object + "'";
            char buf[32];
            for (auto i : idx) {
                std::snprintf(buf, sizeof buf, " 0x%lx", static_cast<unsigned long>(info[i].offset));
                cmd += buf;
            }
            cmd += " 2>/dev/null";
            FILE* p = ::popen(cmd.c_str(), "r");
            if (!p) continue;
            char line[4096];
            for (auto i : idx) {
                if (!std::fgets(line, sizeof line, p)) break;
                std::string fn = line;
                fn.erase(fn.find_last_not_of("\r\n") + 1);
                if (!std::fgets(line, sizeof line, p)) break;
                std::string loc = line;
                loc.erase(loc.find_last_not_of("\r\n") + 1);
                if (fn != "??") info[i].function = fn;
                if (loc.rfind("??", 0) != 0) info[i].location = loc;
            }
            ::pclose(p);
        }
    }
    std::vector<std::string> out;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::string s = info[i].function.empty() ? "??" : info[i].function;
        if (!info[i].location.empty())
            s += " at " + info[i].location;
        else if (!info[i].object.empty()) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "+0x%lx", static_cast<unsigned long>(info[i].offset));
            s += " (" + info[i].object + buf + ")";
        }
        out.push_back(std::move(s));
    }
    return out;
}

// The trace from the op that recorded the node outwards, without the recording machinery.
std::string format_trace(const std::vector<void*>& frames) {
    if (frames.empty()) return "    (no trace: the op was created outside anomaly mode)\n";
    const auto names = symbolize(frames);
    std::string r;
    int shown = 0;
    bool in_machinery = true;
    for (const auto& n : names) {
        if (in_machinery && (n.find("capture_frames") != std::string::npos || n.find("xg::detail::") == 0 ||
                             n.find("xg::make_result") == 0 || n.find("Tensor xg::make_result") == 0))
            continue;
        in_machinery = false;
        if (n.rfind("__libc_start", 0) == 0 || n.rfind("_start", 0) == 0) break;
        r += "    #" + std::to_string(shown) + " " + n + "\n";
        if (++shown == 16) break;
    }
    return r;
}

bool has_nonfinite(const Array& a) {
    if (!a.defined() || !is_floating(a.dtype())) return false;
    return detail::dispatch_floating(a.dtype(), "anomaly", [&]<class T>() {
        const T* p = a.data<T>();
        for (std::int64_t i = 0; i < a.numel(); ++i)
            if (!std::isfinite(p[i])) return true;
        return false;
    });
}

struct RuleScope {
    RuleScope() { ++t_rule_depth; }
    ~RuleScope() { --t_rule_depth; }
};
}  // namespace

bool is_anomaly_enabled() { return t_anomaly; }
AnomalyGuard::AnomalyGuard() : prev_(t_anomaly) { t_anomaly = true; }
AnomalyGuard::~AnomalyGuard() { t_anomaly = prev_; }

std::string Node::creation_trace() const {
    return extras_ && !extras_->creation_frames.empty() ? format_trace(extras_->creation_frames) : std::string();
}

bool detail::anomaly_enabled_fast() { return t_anomaly; }

void detail::check_forward_anomaly(const char* op, const Array& value, const Tensor* const* inputs, std::size_t n) {
    if (t_rule_depth > 0 || !has_nonfinite(value)) return;
    for (std::size_t i = 0; i < n; ++i)
        if (inputs[i]->defined() && has_nonfinite(inputs[i]->array())) return;  // passed on, not produced
    throw ValueError(std::string(op) + ": forward produced NaN or inf from finite inputs (output shape " +
                     shape_str(value.shape()) + "); the op was created at:\n" + format_trace(capture_frames()));
}

// --- recording ------------------------------------------------------------------------------------
namespace {
std::atomic<std::int64_t> g_heavy_cost{detail::kHeavyNodeCost};

// Accumulates the gradient of a leaf into its .grad. Holds the leaf weakly: a leaf's .grad may
// hold a graph (create_graph) that reaches this node, and a dead leaf needs no gradient.
class AccumulateGrad final : public Node {
public:
    explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : Node("AccumulateGrad"), leaf_(leaf) {
        is_accumulator_ = true;
    }
    std::vector<Tensor> apply(const Tensor&, bool) override { return {}; }
    std::shared_ptr<TensorImpl> leaf() const override { return leaf_.lock(); }

private:
    std::weak_ptr<TensorImpl> leaf_;
};

std::shared_ptr<Node> grad_accumulator(const std::shared_ptr<TensorImpl>& leaf) {
    auto& state = leaf->leaf();
    if (auto acc = state.grad_accumulator.lock()) return acc;
    auto acc = detail::make_pooled<AccumulateGrad>(leaf);
    acc->sequence_nr_ = t_sequence++;
    state.grad_accumulator = acc;
    return acc;
}

// The node that receives the gradient of a tensor: its grad_fn, or its leaf's accumulator.
std::shared_ptr<Node> gradient_edge(const std::shared_ptr<TensorImpl>& impl) {
    if (impl->grad_fn) return impl->grad_fn;
    if (impl->is_saved_alias) {
        auto base = impl->leaf_state ? impl->leaf_state->alias_of.lock() : nullptr;
        return base ? gradient_edge(base) : nullptr;
    }
    if (impl->requires_grad) return grad_accumulator(impl);
    return nullptr;
}

// The alias under which a leaf that requires grad is saved (see Saved), shared by all ops.
Tensor saved_alias(const std::shared_ptr<TensorImpl>& leaf) {
    auto& state = leaf->leaf();
    if (auto a = state.saved_alias.lock(); a && a->value.shares_storage(leaf->value) &&
                                           a->value.shape() == leaf->value.shape() &&
                                           a->value.dtype() == leaf->value.dtype())
        return Tensor(std::move(a));
    auto a = detail::make_pooled<TensorImpl>();
    a->value = leaf->value;
    a->requires_grad = true;
    a->is_saved_alias = true;
    a->leaf().alias_of = leaf;
    state.saved_alias = a;
    return Tensor(std::move(a));
}

}  // namespace

bool needs_record(const std::vector<Tensor>& inputs) {
    if (!is_grad_enabled()) return false;
    for (const auto& t : inputs)
        if (t.defined() && t.requires_grad()) return true;
    return false;
}

bool needs_record(std::initializer_list<std::reference_wrapper<const Tensor>> inputs) {
    if (!is_grad_enabled()) return false;
    for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) return true;
    return false;
}

void Node::Input::ShapeDelete::operator()(const Shape* s) const noexcept {
    s->~Shape();
    detail::pool_free(const_cast<Shape*>(s), sizeof(Shape));
}

void Node::Input::set_own_shape(const Shape& s) { own_shape.reset(new (detail::pool_alloc(sizeof(Shape))) Shape(s)); }

Tensor detail::record(std::shared_ptr<OpNode> node, Array value, const Tensor* const* inputs, std::size_t n,
                      bool save_output) {
    node->inputs_.resize(n);
    // Work estimate of the rule (elements read and written) and where separate heavy work meets:
    // decides, at no cost per pass, whether a backward through this node may run branches
    // concurrently. Inputs lead to separate heavy work when their nearest heavy nodes differ (a
    // diamond over one heavy node, as in x - logsumexp(x), is no fork).
    std::int64_t cost = value.numel();
    std::uint64_t top = 0;
    bool fork = false;
    for (std::size_t i = 0; i < n; ++i) {
        const Tensor& t = *inputs[i];
        Node::Input& in = node->inputs_[i];
        if (!t.defined()) continue;
        cost += t.numel();
        in.fn = gradient_edge(t.impl());
        in.dtype = t.dtype();
        if (t.shape() != value.shape()) in.set_own_shape(t.shape());
        if (const Node* c = in.fn.get()) {
            node->fork_ |= c->fork_;
            if (c->heavy_top_) {
                if (top && top != c->heavy_top_) fork = true;
                if (!top) top = c->heavy_top_;
            }
        }
    }
    // Above every input's number (also for inputs recorded on other threads): see run().
    std::uint64_t seq = t_sequence;
    for (const auto& in : node->inputs_)
        if (in.fn && in.fn->sequence_nr_ >= seq) seq = in.fn->sequence_nr_ + 1;
    node->sequence_nr_ = seq;
    t_sequence = seq + 1;
    node->fork_ |= fork;
    node->heavy_top_ = fork || cost >= g_heavy_cost.load(std::memory_order_relaxed) ? seq + 1 : top;
    node->heavy_ = node->heavy_top_ != 0;
    if (t_anomaly) node->extras().creation_frames = capture_frames();
    auto impl = detail::make_pooled<TensorImpl>();
    impl->value = std::move(value);
    if (save_output) {
        node->save_output_ = true;
        node->saved_version_ = impl->value.version();
        node->output_ = impl;
        impl->output_saved = true;
    }
    impl->grad_fn = std::move(node);
    return Tensor(std::move(impl));
}

Tensor make_result(const char* name, Array value, const std::vector<Tensor>& inputs, BackwardRule rule,
                   bool save_output) {
    std::vector<const Tensor*> ptrs;
    ptrs.reserve(inputs.size());
    for (const auto& t : inputs) ptrs.push_back(&t);
    if (t_anomaly) detail::check_forward_anomaly(name, value, ptrs.data(), ptrs.size());
    if (!needs_record(inputs)) return Tensor(std::move(value));
    auto node = detail::make_pooled<detail::RuleNode<BackwardRule>>(name, std::move(rule));
    return detail::record(std::move(node), std::move(value), ptrs.data(), ptrs.size(), save_output);
}

Saved::Saved(const Tensor& t, const char* op) : op_(op) {
    if (!t.defined()) return;
    version_ = t.array().version();
    const auto& impl = t.impl();
    if (impl->requires_grad && !impl->grad_fn && !impl->is_saved_alias)
        tensor_ = saved_alias(impl);
    else
        tensor_ = t;
}

const Tensor& Saved::get() const {
    if (tensor_.defined() && tensor_.array().version() != version_)
        throw GraphError(std::string(op_) + ": a tensor of shape " + shape_str(tensor_.shape()) +
                         " needed for the gradient was modified by an in-place operation (version " +
                         std::to_string(tensor_.array().version()) + ", expected " + std::to_string(version_) + ")");
    return tensor_;
}

std::vector<Tensor> detail::OpNode::apply(const Tensor& g, bool last_use) {
    if (released_)
        throw GraphError(name() +
                         ": trying to backward through the graph a second time (the values this op saved for its "
                         "gradient were freed after the first backward); pass retain_graph=true the first time");
    Tensor y;
    bool adopted = false;
    if (save_output_) {
        if (auto out = output_.lock()) {
            y = Tensor(std::move(out));
        } else {
            if (!extras_ || !extras_->adopted_output.defined()) throw GraphError(name() + ": its saved output is gone");
            auto impl = detail::make_pooled<TensorImpl>();
            impl->value = extras_->adopted_output;
            impl->grad_fn = shared_from_this();
            y = Tensor(std::move(impl));
            adopted = true;
        }
        if (y.array().version() != saved_version_)
            throw GraphError(name() + ": its output (shape " + shape_str(y.shape()) +
                             "), needed for the gradient, was modified by an in-place operation (version " +
                             std::to_string(y.array().version()) + ", expected " + std::to_string(saved_version_) +
                             ")");
    }
    RuleScope scope;
    if (!adopted || !last_use) return call_rule(g, y, last_use);
    // The output's tensor is gone and the node is released after this rule (create_graph implies
    // retain_graph, so nothing is recorded here): y alone holds the value, and a rule that reads it
    // once may write the gradient into its buffer (elementwise activations do), a buffer still in
    // cache, instead of a new one. Kept for a retry if the rule throws.
    extras_->adopted_output = Array();
    try {
        return call_rule(g, y, last_use);
    } catch (...) {
        extras_->adopted_output = y.array();
        throw;
    }
}

void detail::OpNode::release() {
    if (!holds_state_ && !save_output_) return;  // nothing saved: another backward is fine (as PyTorch)
    free_rule();
    if (extras_) {
        // Extras come from malloc: one kept per node of a long chain until the graph dies would
        // grow the heap by megabytes and glibc would trim it again after every pass (W3 at 10^6
        // nodes paid ~100 ns per node in page faults). Free them now unless hooks still need them.
        extras_->adopted_output = Array();
        if (!has_hooks_ && extras_->creation_frames.empty()) extras_.reset();
    }
    output_.reset();
    released_ = true;
}

// --- the backward pass -------------------------------------------------------------------------
namespace {

// Brings a rule's gradient to the input's shape and dtype (un-broadcasting with sum_to).
Tensor conform(Tensor&& g, const Node::Input& in, const Shape& out_shape, const Node& node, std::size_t i) {
    const Shape& want = in.shape(out_shape);
    Tensor r = std::move(g);
    if (r.shape() != want) {
        bool ok = r.ndim() >= want.size();
        for (std::size_t k = 0; ok && k < want.size(); ++k) {
            const auto a = r.shape()[r.ndim() - want.size() + k], b = want[k];
            ok = a == b || b == 1;
        }
        if (!ok)
            throw GraphError(node.name() + ": backward returned a gradient of shape " + shape_str(r.shape()) +
                             " for input " + std::to_string(i) + " of shape " + shape_str(want));
        r = sum_to(r, want);
    }
    if (r.dtype() != in.dtype) r = r.to(in.dtype);
    return r;
}

// dst += src for same-shape, same-dtype arrays (dst is a buffer the engine owns).
void add_inplace(Array& dst, const Array& src) {
    detail::dispatch_floating(dst.dtype(), "accumulate", [&]<class T>() {
        T* d = dst.data<T>();
        const T* s = src.data<T>();
        auto plus = [](auto x, auto y) { return x + y; };
        detail::parallel_for(dst.numel(), detail::kGrainCheap, [&](std::int64_t b, std::int64_t e) {
            detail::simd_map2(d + b, s + b, d + b, e - b, plus);
        });
    });
}

// Adds a gradient into a node's buffer: the first one is moved in; later ones are added in place
// when the buffer is the engine's own (not shared with a rule, a hook or the caller).
void accumulate(Node& n, Tensor&& g, bool create_graph) {
    if (!n.grad_buffer_.defined()) {
        // Owned (later gradients may be added into it in place) when nobody else holds it.
        n.buffer_owned_ =
            !g.requires_grad() && g.impl().use_count() == 1 && g.array().unique() && !g.array().is_uniform();
        n.grad_buffer_ = std::move(g);
        return;
    }
    if (n.buffer_owned_ && !create_graph && !g.requires_grad() && g.shape() == n.grad_buffer_.shape() &&
        g.dtype() == n.grad_buffer_.dtype() && is_floating(g.dtype())) {
        add_inplace(n.grad_buffer_.impl()->value, g.array());
        return;
    }
    n.grad_buffer_ = add(n.grad_buffer_, g);
    n.buffer_owned_ = !n.grad_buffer_.requires_grad();
}

struct BackwardTask {
    std::vector<Tensor> roots;
    std::vector<Tensor> root_grads;
    bool retain_graph = false;
    bool create_graph = false;
    // grad() mode: return the gradient reaching these nodes instead of accumulating into leaves.
    std::vector<std::shared_ptr<Node>> capture_nodes;
    std::vector<Tensor>* captured = nullptr;
};

Tensor run_hooks(const std::vector<std::function<Tensor(const Tensor&)>>& hooks, Tensor g, const Node& node) {
    for (const auto& hook : hooks) {
        Tensor r = hook(g);
        if (!r.defined()) continue;
        if (r.shape() != g.shape())
            throw GraphError(
                "hook on the " + (node.is_accumulator() ? std::string("leaf") : "output of " + node.name()) +
                " returned a gradient of shape " + shape_str(r.shape()) + " instead of " + shape_str(g.shape()));
        g = r.dtype() == g.dtype() ? std::move(r) : r.to(g.dtype());
    }
    return g;
}

// Work vectors of a pass, reused: over a long chain they are large, and fresh ones would be
// mapped and page-faulted on every backward. A nested pass (a hook that calls backward) leases
// its own.
struct Scratch {
    std::vector<Node*> discovered;
    std::vector<Node*> heap;
    std::vector<std::pair<Node*, std::size_t>> frames;
};
thread_local std::vector<std::unique_ptr<Scratch>> t_scratch;

class ScratchLease {
public:
    ScratchLease() {
        if (t_scratch.empty()) {
            s_ = std::make_unique<Scratch>();
        } else {
            s_ = std::move(t_scratch.back());
            t_scratch.pop_back();
        }
    }
    ~ScratchLease() {
        s_->discovered.clear();
        s_->heap.clear();
        s_->frames.clear();
        t_scratch.push_back(std::move(s_));
    }
    Scratch* operator->() { return s_.get(); }

private:
    std::unique_ptr<Scratch> s_;
};

// grad() mode: marks the nodes that have a captured node at or below them (iterative post-order).
void mark_needed(const std::vector<std::shared_ptr<Node>>& roots, std::uint64_t epoch,
                 std::vector<std::pair<Node*, std::size_t>>& stack) {
    auto visit = [&](Node* n) {
        n->visit_epoch_ = epoch;
        n->needed_ = n->is_capture_;
        stack.emplace_back(n, 0);
    };
    for (const auto& root : roots) {
        if (root->visit_epoch_ == epoch) continue;
        visit(root.get());
        while (!stack.empty()) {
            auto& [n, next] = stack.back();
            if (next < n->inputs_.size()) {
                Node* c = n->inputs_[next++].fn.get();
                if (c && c->visit_epoch_ != epoch) visit(c);  // invalidates n, next
            } else {
                Node* done = n;
                stack.pop_back();
                if (!done->needed_)
                    for (const auto& in : done->inputs_)
                        if (in.fn && in.fn->needed_) done->needed_ = true;
            }
        }
    }
}

// --- one node of a pass ---------------------------------------------------------------------------
std::atomic<bool> g_concurrent{true};
std::atomic<std::uint64_t> g_concurrent_passes{0};
thread_local bool t_in_concurrent_pass = false;  // this thread runs a task of a concurrent pass
std::recursive_mutex g_hook_mutex;

// Hooks are user code: in a concurrent pass they run one at a time, isolated so that the thread
// holding the lock does not pick up another node's task (which may wait for the same lock).
Tensor run_hooks_guarded(const std::vector<std::function<Tensor(const Tensor&)>>& hooks, Tensor g, const Node& node,
                         bool concurrent) {
    if (!concurrent) return run_hooks(hooks, std::move(g), node);
    std::lock_guard<std::recursive_mutex> lock(g_hook_mutex);
    return tbb::this_task_arena::isolate([&] { return run_hooks(hooks, std::move(g), node); });
}

// Runs one node on its summed gradient g: hooks, retain_grad, grad() capture, the leaf's .grad or
// the rule with its checks. Calls send(i, gradient) for each input that receives a gradient, in
// input order, after conforming it to the input's shape and dtype.
template <class Send>
void process_node(Node* node, Tensor g, bool owned, const BackwardTask& task, bool concurrent, Send&& send) {
    const bool capture_mode = task.captured != nullptr;
    const bool create_graph = task.create_graph;
    if (node->is_accumulator_) {
        std::shared_ptr<TensorImpl> leaf = node->leaf();
        if (leaf && leaf->leaf_state && !leaf->leaf_state->hooks.empty()) {
            g = run_hooks_guarded(leaf->leaf_state->hooks, std::move(g), *node, concurrent);
            owned = false;
        }
        if (node->is_capture_)
            for (std::size_t k = 0; k < task.capture_nodes.size(); ++k)
                if (task.capture_nodes[k].get() == node) (*task.captured)[k] = g;
        if (capture_mode || !leaf) return;
        if (create_graph) {
            leaf->grad = leaf->grad.defined() ? add(leaf->grad, g) : g;
        } else {
            // A new .grad must not share its buffer with anything else (a rule may have passed
            // the same gradient to several inputs, or it is the caller's grad_output).
            // A gradient nobody else holds (a rule's fresh result) is taken over without a copy.
            const bool sole = g.impl().use_count() == 1 && g.array().unique();
            Tensor gg = (owned || sole) && !g.requires_grad() ? std::move(g) : Tensor(g.array().clone());
            leaf->grad = leaf->grad.defined() ? add(leaf->grad, gg) : std::move(gg);
        }
        return;
    }

    if (node->has_hooks_) {
        if (!node->extras_->pre_hooks.empty())
            g = run_hooks_guarded(node->extras_->pre_hooks, std::move(g), *node, concurrent);
        if (!capture_mode)
            if (auto target = node->extras_->retain_target.lock()) {
                Tensor gg = create_graph ? g : Tensor(g.array().clone());
                target->grad = target->grad.defined() ? add(target->grad, gg) : gg;
            }
    }
    if (node->is_capture_) {
        for (std::size_t k = 0; k < task.capture_nodes.size(); ++k)
            if (task.capture_nodes[k].get() == node) (*task.captured)[k] = g;
        bool below = false;
        for (const auto& in : node->inputs_) below |= in.fn && in.fn->needed_;
        if (!below) return;
    }

    // The inputs' nodes are touched right after the rule: start loading them now.
    for (const auto& in : node->inputs_) __builtin_prefetch(in.fn.get());
    std::vector<Tensor> grads = node->apply(g, !task.retain_graph);
    if (!task.retain_graph) node->release();
    if (grads.size() != node->inputs_.size())
        throw GraphError(node->name() + ": backward returned " + std::to_string(grads.size()) + " gradients for " +
                         std::to_string(node->inputs_.size()) + " inputs");
    if (t_anomaly && !has_nonfinite(g.array()))
        for (std::size_t i = 0; i < grads.size(); ++i)
            if (grads[i].defined() && has_nonfinite(grads[i].array())) {
                const std::string trace = node->creation_trace();
                throw ValueError(node->name() + ": backward produced NaN or inf from a finite gradient (for input " +
                                 std::to_string(i) + " of shape " + shape_str(grads[i].shape()) +
                                 "); the op was created at:\n" +
                                 (trace.empty() ? "    (created outside anomaly mode)\n" : trace));
            }
    for (std::size_t i = 0; i < grads.size(); ++i) {
        Node::Input& in = node->inputs_[i];
        if (!in.fn || !grads[i].defined() || (capture_mode && !in.fn->needed_)) continue;
        send(i, conform(std::move(grads[i]), in, g.shape(), *node, i));
    }
}

// --- concurrent pass --------------------------------------------------------------------------------
// Used when the graph has heavy work on two sides of a fork (see Node::fork_) and more than one
// thread is allowed. A pre-pass counts, for every node, the edges it receives from nodes of the
// pass; a node is ready when they have all run. Independent ready nodes with heavy work run in
// their own TBB tasks, light ones continue in the task that made them ready. Each gradient sent
// to a node is kept with its sender's sequence number and input index, and summed when the node
// is ready in the order a single-threaded pass adds them (newest sender first, then input order),
// so the sums are bit-identical whatever the thread count or the schedule.
class ConcurrentPass {
public:
    ConcurrentPass(const BackwardTask& task, std::vector<Node*>& discovered, std::uint64_t epoch)
        : task_(task),
          nodes_(discovered),
          epoch_(epoch),
          capture_mode_(task.captured != nullptr),
          anomaly_(t_anomaly) {}

    void run(const std::vector<std::shared_ptr<Node>>& roots) {
        std::vector<Node*> stack;
        auto visit = [&](Node* n) {
            if (n->visit_epoch_ == epoch_) return;
            n->visit_epoch_ = epoch_;
            n->pass_index_ = static_cast<std::uint32_t>(nodes_.size());
            nodes_.push_back(n);
            stack.push_back(n);
        };
        for (const auto& r : roots)
            if (!capture_mode_ || r->needed_) visit(r.get());
        while (!stack.empty()) {
            Node* n = stack.back();
            stack.pop_back();
            for (const auto& in : n->inputs_)
                if (Node* c = in.fn.get(); c && (!capture_mode_ || c->needed_)) visit(c);
        }
        slots_.resize(nodes_.size());
        for (Node* n : nodes_)
            for (const auto& in : n->inputs_)
                if (Node* c = in.fn.get(); c && (!capture_mode_ || c->needed_)) ++slots_[c->pass_index_].deps;
        for (std::size_t i = 0; i < roots.size(); ++i)
            if (!capture_mode_ || roots[i]->needed_)
                slots_[roots[i]->pass_index_].in.push_back(
                    {UINT64_MAX, static_cast<std::uint32_t>(i), Tensor(task_.root_grads[i])});

        std::vector<Node*> ready;
        for (Node* n : nodes_)
            if (slots_[n->pass_index_].deps == 0) ready.push_back(n);  // only roots: the rest have senders
        for (std::size_t i = 1; i < ready.size(); ++i) group_.run([this, n = ready[i]] { execute(n); });
        if (!ready.empty()) execute(ready[0]);
        group_.wait();
        if (error_) std::rethrow_exception(error_);
    }

private:
    struct Contribution {
        std::uint64_t seq;   // sequence number of the sender (UINT64_MAX: a root's grad_output)
        std::uint32_t slot;  // input index at the sender (roots: the root's index)
        Tensor grad;
    };
    struct Slot {
        std::uint32_t deps = 0;  // edges from nodes of the pass that have not run yet
        std::vector<Contribution> in;
    };

    // Runs `start` and then, in this task, the nodes it makes ready (heavy ones beyond the first
    // are handed to new tasks).
    void execute(Node* start) {
        // A TBB worker starts with the default thread state: take the caller's.
        struct ThreadState {
            bool anomaly, in_pass;
            ThreadState(bool a) : anomaly(t_anomaly), in_pass(t_in_concurrent_pass) {
                t_anomaly = a;
                t_in_concurrent_pass = true;
            }
            ~ThreadState() {
                t_anomaly = anomaly;
                t_in_concurrent_pass = in_pass;
            }
        } state(anomaly_);
        std::optional<NoGradGuard> no_grad;
        std::optional<EnableGradGuard> enable_grad;
        if (task_.create_graph)
            enable_grad.emplace();
        else
            no_grad.emplace();

        std::vector<Node*> local{start}, ready;
        std::vector<std::pair<std::size_t, Tensor>> sent;
        while (!local.empty() && !failed_.load(std::memory_order_relaxed)) {
            Node* node = local.back();
            local.pop_back();
            sent.clear();
            try {
                // Every sender has run: this task alone touches the node's slot and buffer now.
                std::vector<Contribution> in = std::move(slots_[node->pass_index_].in);
                std::sort(in.begin(), in.end(), [](const Contribution& a, const Contribution& b) {
                    return a.seq != b.seq ? a.seq > b.seq : a.slot < b.slot;
                });
                for (auto& c : in) accumulate(*node, std::move(c.grad), task_.create_graph);
                in.clear();
                Tensor g = std::move(node->grad_buffer_);
                node->grad_buffer_ = Tensor();
                const bool owned = node->buffer_owned_;
                node->buffer_owned_ = false;
                if (g.defined())
                    process_node(node, std::move(g), owned, task_, true,
                                 [&](std::size_t i, Tensor&& gi) { sent.emplace_back(i, std::move(gi)); });
            } catch (...) {
                fail(node, std::current_exception());
                return;
            }
            ready.clear();
            {
                std::lock_guard<std::mutex> lock(mutex_);
                for (auto& [i, gi] : sent)
                    slots_[node->inputs_[i].fn->pass_index_].in.push_back(
                        {node->sequence_nr_, static_cast<std::uint32_t>(i), std::move(gi)});
                for (const auto& in : node->inputs_)
                    if (Node* c = in.fn.get(); c && (!capture_mode_ || c->needed_))
                        if (--slots_[c->pass_index_].deps == 0) ready.push_back(c);
            }
            bool kept_heavy = false;
            for (Node* c : ready) {
                if (c->heavy_ && kept_heavy) {
                    group_.run([this, c] { execute(c); });
                } else {
                    kept_heavy |= c->heavy_;
                    local.push_back(c);
                }
            }
        }
    }

    // Keeps the error of the newest failing node (the one a single-threaded pass meets first).
    void fail(Node* node, std::exception_ptr e) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_ || node->sequence_nr_ > error_seq_) {
            error_ = std::move(e);
            error_seq_ = node->sequence_nr_;
        }
        failed_.store(true, std::memory_order_relaxed);
    }

    const BackwardTask& task_;
    std::vector<Node*>& nodes_;
    std::uint64_t epoch_;
    bool capture_mode_, anomaly_;
    std::vector<Slot> slots_;
    std::mutex mutex_;
    std::atomic<bool> failed_{false};
    std::exception_ptr error_;
    std::uint64_t error_seq_ = 0;
    tbb::task_group group_;
};

// Worth running branches concurrently: heavy work on two sides of a fork, more than one thread.
bool use_concurrent_pass(const std::vector<std::shared_ptr<Node>>& roots) {
    bool fork = false;
    std::uint64_t top = 0;
    for (const auto& r : roots) {
        fork |= r->fork_;
        if (r->heavy_top_) {
            fork |= top && top != r->heavy_top_;
            top = r->heavy_top_;
        }
    }
    if (!fork) return false;
    return g_concurrent.load(std::memory_order_relaxed) && !t_in_concurrent_pass && get_num_threads() > 1;
}

// The pass. Every edge goes from a node to an older one (record() gives a node a sequence number
// above its inputs'), so running the newest discovered node first is a topological order: when a
// node runs, every node that can still send it a gradient is newer and has already run. No
// dependency-counting pre-pass is needed; a node is discovered when it first receives a gradient.
void run(BackwardTask& task) {
    const bool capture_mode = task.captured != nullptr;
    const bool create_graph = task.create_graph;
    std::vector<std::shared_ptr<Node>> root_nodes;
    root_nodes.reserve(task.roots.size());
    for (std::size_t i = 0; i < task.roots.size(); ++i) {
        const Tensor& r = task.roots[i];
        std::shared_ptr<Node> n = r.defined() && r.requires_grad() ? gradient_edge(r.impl()) : nullptr;
        if (!n)
            throw GraphError("backward: output " + std::to_string(i) + " (shape " +
                             (r.defined() ? shape_str(r.shape()) : std::string("undefined")) +
                             ") does not require grad and has no grad_fn");
        root_nodes.push_back(std::move(n));
    }

    ScratchLease scratch;
    std::vector<Node*>& discovered = scratch->discovered;
    std::vector<Node*>& heap = scratch->heap;
    // On success every discovered node has run and left no state behind; after an exception the
    // pending gradient buffers are dropped here (they may hold graphs).
    struct Cleanup {
        std::vector<Node*>& nodes;
        BackwardTask& task;
        bool done = false;
        ~Cleanup() {
            if (!done)
                for (Node* n : nodes) {
                    n->grad_buffer_ = Tensor();
                    n->buffer_owned_ = false;
                }
            for (auto& c : task.capture_nodes) c->is_capture_ = false;
        }
    } cleanup{discovered, task};

    const std::uint64_t epoch = g_epoch.fetch_add(2) + 2;  // epoch - 1 marks grad()'s pre-pass
    if (capture_mode) {
        for (auto& c : task.capture_nodes) c->is_capture_ = true;
        mark_needed(root_nodes, epoch - 1, scratch->frames);
    }

    if (use_concurrent_pass(root_nodes)) {
        g_concurrent_passes.fetch_add(1, std::memory_order_relaxed);
        ConcurrentPass(task, discovered, epoch).run(root_nodes);
        cleanup.done = true;
        return;
    }

    auto later_first = [](const Node* a, const Node* b) { return a->sequence_nr_ < b->sequence_nr_; };
    auto discover = [&](Node* n) {
        if (n->visit_epoch_ == epoch) return;
        n->visit_epoch_ = epoch;
        discovered.push_back(n);
        heap.push_back(n);
        std::push_heap(heap.begin(), heap.end(), later_first);
    };
    for (std::size_t i = 0; i < root_nodes.size(); ++i) {
        Node* n = root_nodes[i].get();
        if (capture_mode && !n->needed_) continue;
        discover(n);  // first, so that Cleanup sees every buffer that may hold a gradient
        accumulate(*n, Tensor(task.root_grads[i]), create_graph);
    }

    std::optional<NoGradGuard> no_grad;
    std::optional<EnableGradGuard> enable_grad;
    if (create_graph)
        enable_grad.emplace();
    else
        no_grad.emplace();

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), later_first);
        Node* node = heap.back();
        heap.pop_back();
        Tensor g = std::move(node->grad_buffer_);
        node->grad_buffer_ = Tensor();
        const bool owned = node->buffer_owned_;
        node->buffer_owned_ = false;
        if (!g.defined()) continue;  // every gradient sent here was undefined
        process_node(node, std::move(g), owned, task, false, [&](std::size_t i, Tensor&& gi) {
            Node* c = node->inputs_[i].fn.get();
            discover(c);
            accumulate(*c, std::move(gi), create_graph);
        });
    }
    cleanup.done = true;
}

Tensor default_grad(const Tensor& out, const char* op, std::size_t index) {
    if (out.numel() != 1)
        throw GraphError(
            std::string(op) + ": a gradient can be created implicitly only for one-element outputs; output " +
            std::to_string(index) + (out.grad_fn() ? " (produced by " + out.grad_fn_name() + ")" : std::string()) +
            " has shape " + shape_str(out.shape()) + " (pass grad_output)");
    return Tensor(engine::full(out.shape(), out.dtype(), 1.0));
}

}  // namespace

std::int64_t detail::heavy_node_cost() { return g_heavy_cost.load(); }

void detail::set_heavy_node_cost(std::int64_t elements) { g_heavy_cost.store(elements); }

std::uint64_t detail::concurrent_pass_count() { return g_concurrent_passes.load(); }

void set_concurrent_backward(bool enabled) { g_concurrent.store(enabled); }

bool is_concurrent_backward() { return g_concurrent.load(); }

void Tensor::backward(const Tensor& grad_output, bool retain_graph, bool create_graph) const {
    if (!defined()) throw ValueError("backward: the tensor is undefined");
    BackwardTask task;
    task.roots = {*this};
    Tensor g = grad_output.defined() ? grad_output : default_grad(*this, "backward", 0);
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
        if (!outputs[i].defined()) throw ValueError("grad: output " + std::to_string(i) + " is undefined");
        Tensor g =
            grad_outputs.empty() || !grad_outputs[i].defined() ? default_grad(outputs[i], "grad", i) : grad_outputs[i];
        if (g.shape() != outputs[i].shape())
            throw ShapeError("grad: grad_output " + std::to_string(i) + " has shape " + shape_str(g.shape()) +
                             " but the output has shape " + shape_str(outputs[i].shape()));
        task.root_grads.push_back(g.dtype() == outputs[i].dtype() ? g : g.to(outputs[i].dtype()));
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const Tensor& t = inputs[i];
        std::shared_ptr<Node> n = t.defined() && t.requires_grad() ? gradient_edge(t.impl()) : nullptr;
        if (!n) throw GraphError("grad: input " + std::to_string(i) + " does not require grad");
        task.capture_nodes.push_back(std::move(n));  // also keeps a fresh accumulator alive
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
        if (result[i].defined() && !create_graph && result[i].requires_grad()) result[i] = result[i].detach();
    }
    return result;
}

}  // namespace xg

// Graphviz DOT export of a recorded graph.
#include <sstream>
#include <unordered_map>

#include "grad.hpp"
#include "node.hpp"

namespace xg {

namespace {

std::string escape(const std::string& s) {
    std::string r;
    for (char c : s) {
        if (c == '"' || c == '\\') r += '\\';
        r += c;
    }
    return r;
}

std::string describe(const Shape& shape, Dtype dtype) { return shape_str(shape) + " " + dtype_name(dtype); }

}  // namespace

std::string to_dot(const Tensor& root) {
    if (!root.defined()) throw ValueError("to_dot: the tensor is undefined");
    std::ostringstream os;
    os << "digraph xgrad {\n"
       << "  graph [rankdir=TB];\n"
       << "  node [fontname=\"Helvetica\", fontsize=10];\n"
       << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
    os << "  output [label=\"output\\n"
       << describe(root.shape(), root.dtype()) << "\", shape=doubleoctagon, style=filled, fillcolor=\"#f4cccc\"];\n";

    const std::shared_ptr<Node> top = root.grad_fn();
    if (!top) {
        // A leaf: the whole graph is the tensor itself.
        os << "  n0 [label=\"" << (root.requires_grad() ? "leaf (requires_grad)" : "leaf (constant)") << "\\n"
           << describe(root.shape(), root.dtype()) << "\", shape=ellipse, style=filled, fillcolor=\""
           << (root.requires_grad() ? "#d9ead3" : "#eeeeee") << "\"];\n  n0 -> output;\n}\n";
        return os.str();
    }

    // Iterative walk; a node's output shape is the shape its consumer recorded for that input.
    std::unordered_map<const Node*, int> ids;
    struct Item {
        const Node* node;
        Shape shape;
        Dtype dtype;
    };
    std::vector<Item> stack{{top.get(), root.shape(), root.dtype()}};
    ids[top.get()] = 0;
    int next_id = 1, const_id = 0;
    std::ostringstream edges;
    edges << "  n0 -> output;\n";
    while (!stack.empty()) {
        Item it = std::move(stack.back());
        stack.pop_back();
        const Node& n = *it.node;
        const int id = ids[&n];
        if (n.is_accumulator()) {
            const auto leaf = n.leaf();
            os << "  n" << id << " [label=\"leaf (requires_grad)\\n" << describe(it.shape, it.dtype);
            if (leaf && leaf->grad.defined()) os << "\\ngrad accumulated";
            os << "\", shape=ellipse, style=filled, fillcolor=\"#d9ead3\"];\n";
            continue;
        }
        const auto* op = dynamic_cast<const detail::OpNode*>(&n);
        os << "  n" << id << " [label=\"" << escape(n.name()) << "\\n" << describe(it.shape, it.dtype);
        if (op && op->released_) os << "\\n(saved values freed)";
        os << "\", shape=box, style=\"rounded,filled\", fillcolor=\"#cfe2f3\"];\n";
        const bool several = n.inputs().size() > 1;
        for (std::size_t i = 0; i < n.inputs().size(); ++i) {
            const Node::Input& in = n.inputs()[i];
            const Shape shape = in.shape(it.shape);
            const std::string label = several ? " [label=\"" + std::to_string(i) + "\"]" : std::string();
            if (!in.fn) {
                // An input that needs no gradient (constant or integer tensor).
                os << "  c" << const_id << " [label=\"constant\\n"
                   << describe(shape, in.dtype)
                   << "\", shape=note, style=filled, fillcolor=\"#eeeeee\", fontcolor=\"#555555\"];\n";
                edges << "  c" << const_id++ << " -> n" << id << label << ";\n";
                continue;
            }
            auto [pos, inserted] = ids.emplace(in.fn.get(), next_id);
            if (inserted) {
                ++next_id;
                stack.push_back({in.fn.get(), shape, in.dtype});
            }
            edges << "  n" << pos->second << " -> n" << id << label << ";\n";
        }
    }
    os << edges.str() << "}\n";
    return os.str();
}

}  // namespace xg

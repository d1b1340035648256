// xg::to_dot: the recorded graph in Graphviz DOT.
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <xgrad/xgrad.hpp>

namespace {
std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
    return n;
}
std::size_t edges(const std::string& dot) {
    const std::regex edge(R"(\n  \w+ -> \w+)");
    return static_cast<std::size_t>(
        std::distance(std::sregex_iterator(dot.begin(), dot.end(), edge), std::sregex_iterator()));
}
}  // namespace

BOOST_AUTO_TEST_SUITE(autograd_dot)

BOOST_AUTO_TEST_CASE(ops_shapes_leaves_and_constants_are_shown) {
    auto x = xg::ones({4, 3}, xg::f64);                   // constant input
    auto w = xg::ones({3, 2}, xg::f64).requires_grad_();  // parameters
    auto b = xg::zeros({2}, xg::f64).requires_grad_();
    auto f = xg::sum(xg::sigmoid(xg::matmul(x, w) + b));
    const std::string dot = xg::to_dot(f);
    BOOST_TEST(dot.rfind("digraph xgrad {", 0) == 0u);
    BOOST_TEST(dot.substr(dot.size() - 2) == "}\n");
    BOOST_TEST(dot.find("label=\"sum\\n[] float64\"") != std::string::npos, dot);
    BOOST_TEST(dot.find("label=\"sigmoid\\n[4,2] float64\"") != std::string::npos, dot);
    BOOST_TEST(dot.find("label=\"add\\n[4,2] float64\"") != std::string::npos, dot);
    BOOST_TEST(dot.find("label=\"matmul\\n[4,2] float64\"") != std::string::npos, dot);
    BOOST_TEST(dot.find("leaf (requires_grad)\\n[3,2] float64") != std::string::npos, dot);
    BOOST_TEST(dot.find("leaf (requires_grad)\\n[2] float64") != std::string::npos, dot);
    BOOST_TEST(dot.find("constant\\n[4,3] float64") != std::string::npos, dot);
    BOOST_TEST(dot.find("output\\n[] float64") != std::string::npos, dot);
    BOOST_TEST(count(dot, "leaf (requires_grad)") == 2u);
    BOOST_TEST(count(dot, "constant\\n") == 1u);
    // output<-sum<-sigmoid<-add<-{matmul, b}; matmul<-{x, w}
    BOOST_TEST(edges(dot) == 7u, dot);
}

BOOST_AUTO_TEST_CASE(a_node_used_twice_appears_once_with_two_edges) {
    auto x = xg::ones({2}, xg::f64).requires_grad_();
    auto h = xg::tanh(x);
    auto y = h * h;
    const std::string dot = xg::to_dot(y);
    BOOST_TEST(count(dot, "label=\"tanh") == 1u);
    BOOST_TEST(count(dot, "leaf (requires_grad)") == 1u);
    // mul has two numbered input edges from the same tanh node.
    const std::regex two(R"(n(\d+) -> n0 \[label="0"\];\n  n\1 -> n0 \[label="1"\])");
    BOOST_TEST(std::regex_search(dot, two), dot);
}

BOOST_AUTO_TEST_CASE(a_leaf_root_and_a_freed_graph) {
    auto c = xg::ones({3});
    BOOST_TEST(xg::to_dot(c).find("leaf (constant)\\n[3] float32") != std::string::npos);
    auto x = xg::ones({3}).requires_grad_();
    BOOST_TEST(xg::to_dot(x).find("leaf (requires_grad)\\n[3] float32") != std::string::npos);
    auto y = xg::sum(xg::exp(x));
    y.backward();
    const std::string dot = xg::to_dot(y);
    BOOST_TEST(dot.find("exp\\n[3] float32\\n(saved values freed)") != std::string::npos, dot);
    BOOST_TEST(dot.find("grad accumulated") != std::string::npos, dot);
    BOOST_CHECK_THROW(xg::to_dot(xg::Tensor()), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(graphviz_accepts_the_output_when_installed) {
    if (std::system("command -v dot >/dev/null 2>&1") != 0) return;  // Graphviz is optional
    auto x = xg::ones({2, 2}, xg::f64).requires_grad_();
    auto y = xg::sum(xg::relu(xg::matmul(x, x)) * 2.0);
    {
        std::ofstream out("autograd_dot_test.dot");
        out << xg::to_dot(y);
    }
    BOOST_TEST(std::system("dot -Tsvg autograd_dot_test.dot -o autograd_dot_test.svg 2>/dev/null") == 0);
    std::ifstream svg("autograd_dot_test.svg");
    std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
    BOOST_TEST(text.find("<svg") != std::string::npos);
    BOOST_TEST(text.find("matmul") != std::string::npos);
    std::remove("autograd_dot_test.dot");
    std::remove("autograd_dot_test.svg");
}

BOOST_AUTO_TEST_SUITE_END()

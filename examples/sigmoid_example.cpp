// f(x, w, b) = sum(sigmoid(x.w + b)): values, gradients, a gradient check and the graph as DOT
// (sigmoid_graph.dot, plus sigmoid_graph.svg when Graphviz's `dot` is installed).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <xgrad/xgrad.hpp>

int main() {
    xg::manual_seed(0);
    auto x = xg::randn({4, 3}, xg::f64);                   // data: no gradient
    auto w = xg::randn({3, 2}, xg::f64).requires_grad_();  // parameters
    auto b = xg::zeros({2}, xg::f64).requires_grad_();

    auto f = xg::sum(xg::sigmoid(xg::matmul(x, w) + b));
    const std::string dot = xg::to_dot(f);  // the graph as recorded (backward frees saved values)
    f.backward();
    std::cout << "x = " << x << "\n";
    std::cout << "w = " << w << "\n";
    std::cout << "b = " << b << "\n";
    std::cout << "f = sum(sigmoid(x.w + b)) = " << f << "\n\n";
    // df/dw = x^T (s (1 - s)), df/db = column sums of s (1 - s), with s = sigmoid(x.w + b).
    std::cout << "df/dw = " << w.grad() << "\n";
    std::cout << "df/db = " << b.grad() << "\n\n";

    // Central differences in float64 against the analytical gradients, first and second order.
    auto fn = [](const std::vector<xg::Tensor>& in) { return xg::sum(xg::sigmoid(xg::matmul(in[0], in[1]) + in[2])); };
    const auto check = xg::gradcheck(fn, {x, w, b});
    const auto check2 = xg::gradgradcheck(fn, {x, w, b});
    std::cout << check << "second derivatives: " << check2 << "\n";

    std::ofstream("sigmoid_graph.dot") << dot;
    std::cout << "graph written to sigmoid_graph.dot";
    if (std::system("command -v dot >/dev/null 2>&1") == 0 &&
        std::system("dot -Tsvg sigmoid_graph.dot -o sigmoid_graph.svg") == 0)
        std::cout << " and sigmoid_graph.svg";
    else
        std::cout << " (install Graphviz for an SVG: dot -Tsvg sigmoid_graph.dot -o sigmoid_graph.svg)";
    std::cout << "\n";
    return check && check2 ? 0 : 1;
}

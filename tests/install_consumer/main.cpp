// Uses the installed umbrella header: d/dx sum(x^2) = 2x.
#include <xgrad/xgrad.hpp>

#include <iostream>

int main() {
    auto x = xg::tensor({1.0, -2.0, 3.0}).requires_grad_();
    xg::sum(x * x).backward();
    const auto g = x.grad().to_vector<double>();
    const bool ok = g == std::vector<double>{2.0, -4.0, 6.0};
    std::cout << (ok ? "consumer ok" : "consumer: wrong gradient") << "\n";
    return ok ? 0 : 1;
}

// Helpers shared by the user-activation suites (test_user_activation*.cpp).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <vector>
#include <xgrad/xgrad.hpp>

namespace user_activation_test {
using xg::Tensor;

inline bool close(double a, double b, double rel = 1e-12, double abs = 1e-14) {
    return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)) + abs;
}

// Values, f' and f'' of an activation through autograd (backward and double backward).
inline std::array<std::vector<double>, 3> through_autograd(const std::function<Tensor(const Tensor&)>& act,
                                                           const std::vector<double>& xs, xg::Dtype dtype = xg::f64) {
    auto x = xg::tensor(xs, {-1}, dtype).requires_grad_();
    const Tensor y = act(x);
    const Tensor d1 = xg::grad({xg::sum(y)}, {x}, {}, true, true)[0];
    const Tensor d2 = xg::grad({xg::sum(d1)}, {x})[0];
    return {y.to_vector<double>(), d1.to_vector<double>(), d2.to_vector<double>()};
}
}  // namespace user_activation_test

// xg::grad (torch.autograd.grad) and the functional API built on it, against hand-derived values.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <xgrad/xgrad.hpp>

namespace {
namespace tt = boost::test_tools;
xg::Tensor f64(std::initializer_list<double> v, xg::Shape s = {-1}) { return xg::tensor(v, s, xg::f64); }
std::vector<double> values(const xg::Tensor& t) { return t.to_vector<double>(); }
void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
    BOOST_TEST_REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST(got[i] == want[i], tt::tolerance(tol));
}

// f(x) = [x0 x1, sin x0, x1^2]; J = [[x1, x0], [cos x0, 0], [0, 2 x1]].
xg::Tensor three_outputs(const xg::Tensor& x) {
    auto x0 = xg::slice(x, 0, 0, 1), x1 = xg::slice(x, 0, 1, 2);
    return xg::concat({x0 * x1, xg::sin(x0), x1 * x1}, 0);
}
// g(x) = x0^2 x1 + x0 e^x1; H = [[2 x1, 2 x0 + e^x1], [2 x0 + e^x1, x0 e^x1]].
xg::Tensor scalar_fn(const xg::Tensor& x) {
    auto x0 = xg::slice(x, 0, 0, 1), x1 = xg::slice(x, 0, 1, 2);
    return xg::sum(x0 * x0 * x1 + x0 * xg::exp(x1));
}
}  // namespace

BOOST_AUTO_TEST_SUITE(autograd_grad)

BOOST_AUTO_TEST_CASE(grad_returns_gradients_without_touching_dot_grad) {
    auto x = f64({1, 2}).requires_grad_();
    auto w = f64({3, 4}).requires_grad_();
    auto y = xg::sum(x * w * w);
    const auto g = xg::grad({y}, {x, w});
    BOOST_TEST(values(g[0]) == std::vector<double>({9, 16}), tt::per_element());  // w^2
    BOOST_TEST(values(g[1]) == std::vector<double>({6, 16}), tt::per_element());  // 2 x w
    BOOST_TEST(!x.grad().defined());
    BOOST_TEST(!w.grad().defined());
    BOOST_TEST(!g[0].requires_grad());
}

BOOST_AUTO_TEST_CASE(grad_of_several_outputs_sums_their_contributions) {
    auto x = f64({2}, {}).requires_grad_();
    const auto g = xg::grad({x * x, x * 3.0}, {x}, {f64({1}, {}), f64({10}, {})});
    BOOST_TEST(g[0].item<double>() == 2 * 2 + 30);
}

BOOST_AUTO_TEST_CASE(grad_with_respect_to_an_intermediate_tensor) {
    auto x = f64({1, 2}).requires_grad_();
    auto h = x * 3.0;
    auto y = xg::sum(h * h);
    const auto g = xg::grad({y}, {h, x});
    BOOST_TEST(values(g[0]) == std::vector<double>({6, 12}), tt::per_element());   // 2h
    BOOST_TEST(values(g[1]) == std::vector<double>({18, 36}), tt::per_element());  // 18x
}

BOOST_AUTO_TEST_CASE(grad_of_an_unused_input_throws_unless_allow_unused) {
    auto x = f64({1}).requires_grad_();
    auto unused = f64({1}).requires_grad_();
    auto y = xg::sum(x * 2.0);
    BOOST_CHECK_THROW(xg::grad({y}, {x, unused}, {}, true), xg::GraphError);
    const auto g = xg::grad({y}, {x, unused}, {}, false, false, true);
    BOOST_TEST(g[0].item<double>() == 2.0);
    BOOST_TEST(!g[1].defined());
}

BOOST_AUTO_TEST_CASE(grad_with_respect_to_a_tensor_without_grad_throws) {
    auto x = f64({1}).requires_grad_();
    auto c = f64({1});
    BOOST_CHECK_THROW(xg::grad({xg::sum(x * c)}, {c}), xg::GraphError);
}

BOOST_AUTO_TEST_CASE(grad_of_a_non_scalar_output_needs_grad_outputs) {
    auto x = f64({1, 2}).requires_grad_();
    BOOST_CHECK_THROW(xg::grad({x * 2.0}, {x}), xg::GraphError);
    BOOST_CHECK_THROW(xg::grad({x * 2.0}, {x}, {f64({1, 1, 1})}), xg::ShapeError);
    BOOST_CHECK_THROW(xg::grad({x * 2.0}, {x}, {f64({1, 1}), f64({1, 1})}), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(grad_frees_the_graph_unless_retained) {
    auto x = f64({0.5}).requires_grad_();
    auto y = xg::sum(xg::exp(x));
    xg::grad({y}, {x}, {}, true);
    xg::grad({y}, {x});
    BOOST_CHECK_THROW(xg::grad({y}, {x}), xg::GraphError);
}

BOOST_AUTO_TEST_CASE(create_graph_gives_second_and_third_derivatives_of_x4_sin_x) {
    // f = x^4 sin x
    // f'   = 4x^3 s + x^4 c
    // f''  = 12x^2 s + 8x^3 c - x^4 s
    // f''' = 24x s + 36x^2 c - 12x^3 s - x^4 c
    for (double v : {0.7, -1.3, 2.5}) {
        auto x = f64({v}, {}).requires_grad_();
        auto f = xg::pow(x, 4.0) * xg::sin(x);
        const auto d1 = xg::grad({f}, {x}, {}, false, true)[0];
        const auto d2 = xg::grad({d1}, {x}, {}, false, true)[0];
        const auto d3 = xg::grad({d2}, {x})[0];
        const double s = std::sin(v), c = std::cos(v);
        BOOST_TEST(d1.item<double>() == 4 * v * v * v * s + std::pow(v, 4) * c, tt::tolerance(1e-12));
        BOOST_TEST(d2.item<double>() == 12 * v * v * s + 8 * std::pow(v, 3) * c - std::pow(v, 4) * s,
                   tt::tolerance(1e-12));
        BOOST_TEST(d3.item<double>() == 24 * v * s + 36 * v * v * c - 12 * std::pow(v, 3) * s - std::pow(v, 4) * c,
                   tt::tolerance(1e-12));
        BOOST_TEST(d1.requires_grad());
        BOOST_TEST(!d3.requires_grad());
    }
}

BOOST_AUTO_TEST_CASE(create_graph_through_saved_outputs_and_products) {
    // y = sigmoid(x) * x: y' = s + x s (1-s), y'' = 2 s (1-s) + x s (1-s)(1-2s).
    const double v = 0.8, s = 1 / (1 + std::exp(-v));
    auto x = f64({v}, {}).requires_grad_();
    auto y = xg::sigmoid(x) * x;
    const auto d1 = xg::grad({y}, {x}, {}, false, true)[0];
    const auto d2 = xg::grad({d1}, {x})[0];
    BOOST_TEST(d1.item<double>() == s + v * s * (1 - s), tt::tolerance(1e-13));
    BOOST_TEST(d2.item<double>() == 2 * s * (1 - s) + v * s * (1 - s) * (1 - 2 * s), tt::tolerance(1e-13));
}

BOOST_AUTO_TEST_CASE(mixed_second_derivative_of_two_inputs) {
    // f = x^2 y^3: d2f/dxdy = 6 x y^2.
    auto x = f64({1.5}, {}).requires_grad_();
    auto y = f64({-2}, {}).requires_grad_();
    auto f = x * x * y * y * y;
    const auto dfdx = xg::grad({f}, {x}, {}, false, true)[0];
    const auto d2 = xg::grad({dfdx}, {y})[0];
    BOOST_TEST(d2.item<double>() == 6 * 1.5 * 4, tt::tolerance(1e-14));
}

BOOST_AUTO_TEST_CASE(jacobian_of_a_vector_function_by_hand) {
    const double a = 0.9, b = -2;
    auto x = f64({a, b});
    const auto J = xg::jacobian(three_outputs, x);
    BOOST_TEST((J.shape() == xg::Shape{3, 2}));
    expect_close(values(J), {b, a, std::cos(a), 0, 0, 2 * b}, 1e-14);
    BOOST_TEST(!J.requires_grad());
    BOOST_TEST(!x.requires_grad());  // the input is left as it was
}

BOOST_AUTO_TEST_CASE(jacobian_shape_is_output_shape_then_input_shape) {
    // f(X) = X A with X 2x3: J[i,j,k,l] = delta_ik A[l,j].
    auto A = xg::tensor({1, 2, 3, 4, 5, 6}, {3, 2}, xg::f64);
    auto X = xg::tensor({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {2, 3}, xg::f64);
    const auto J = xg::jacobian([&](const xg::Tensor& x) { return xg::matmul(x, A); }, X);
    BOOST_TEST((J.shape() == xg::Shape{2, 2, 2, 3}));
    const auto v = values(J), av = values(A);
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
            for (int k = 0; k < 2; ++k)
                for (int l = 0; l < 3; ++l)
                    BOOST_TEST(v[((i * 2 + j) * 2 + k) * 3 + l] == (i == k ? av[l * 2 + j] : 0.0));
}

BOOST_AUTO_TEST_CASE(jacobian_with_create_graph_is_differentiable) {
    // f(x) = x^3 elementwise: J = diag(3x^2), sum(J) = sum(3x^2), d/dx = 6x.
    auto x = f64({1, -2}).requires_grad_();
    const auto J = xg::jacobian([](const xg::Tensor& t) { return t * t * t; }, x, true);
    BOOST_TEST(values(J) == std::vector<double>({3, 0, 0, 12}), tt::per_element());
    BOOST_TEST(J.requires_grad());
    xg::sum(J).backward();
    BOOST_TEST(values(x.grad()) == std::vector<double>({6, -12}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(jacobian_of_a_function_that_ignores_its_input_is_zero) {
    const auto J = xg::jacobian([](const xg::Tensor&) { return f64({1, 2, 3}); }, f64({1, 2}));
    BOOST_TEST((J.shape() == xg::Shape{3, 2}));
    BOOST_TEST(values(J) == std::vector<double>(6, 0.0), tt::per_element());
}

BOOST_AUTO_TEST_CASE(hessian_of_a_scalar_function_by_hand) {
    const double a = 0.6, b = -0.4, e = std::exp(b);
    const auto H = xg::hessian(scalar_fn, f64({a, b}));
    BOOST_TEST((H.shape() == xg::Shape{2, 2}));
    const auto h = values(H);
    BOOST_TEST(h[0] == 2 * b, tt::tolerance(1e-14));
    BOOST_TEST(h[1] == 2 * a + e, tt::tolerance(1e-14));
    BOOST_TEST(h[2] == 2 * a + e, tt::tolerance(1e-14));
    BOOST_TEST(h[3] == a * e, tt::tolerance(1e-14));
}

BOOST_AUTO_TEST_CASE(hessian_of_a_linear_function_is_zero_and_non_scalar_throws) {
    const auto H = xg::hessian([](const xg::Tensor& x) { return xg::sum(x * 3.0); }, f64({1, 2, 3}));
    BOOST_TEST((H.shape() == xg::Shape{3, 3}));
    BOOST_TEST(values(H) == std::vector<double>(9, 0.0), tt::per_element());
    BOOST_CHECK_THROW(xg::hessian([](const xg::Tensor& x) { return x * x; }, f64({1, 2})), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(vjp_by_hand) {
    const double a = 0.9, b = -2;
    const auto [y, vj] = xg::vjp(three_outputs, f64({a, b}), f64({1, 2, 3}));
    expect_close(values(y), {a * b, std::sin(a), b * b}, 1e-14);
    expect_close(values(vj), std::vector<double>({b + 2 * std::cos(a), a + 6 * b}), 1e-14);
    BOOST_CHECK_THROW(xg::vjp(three_outputs, f64({a, b}), f64({1, 2})), xg::ShapeError);
    BOOST_CHECK_THROW(xg::vjp(three_outputs, f64({a, b}), xg::Tensor()), xg::GraphError);
    // v may be omitted for a one-value function: the gradient.
    const auto [s, g] = xg::vjp(scalar_fn, f64({a, b}), xg::Tensor());
    BOOST_TEST(values(g)[0] == 2 * a * b + std::exp(b), tt::tolerance(1e-14));
}

BOOST_AUTO_TEST_CASE(jvp_by_hand) {
    const double a = 0.9, b = -2;
    const auto [y, jv] = xg::jvp(three_outputs, f64({a, b}), f64({0.5, -1}));
    expect_close(values(y), std::vector<double>({a * b, std::sin(a), b * b}), 1e-14);
    expect_close(values(jv), std::vector<double>({0.5 * b - a, 0.5 * std::cos(a), -2 * b}), 1e-14);
    BOOST_CHECK_THROW(xg::jvp(three_outputs, f64({a, b}), f64({1, 2, 3})), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(jvp_through_an_op_whose_rule_passes_the_gradient_on) {
    // add's rule returns its gradient unchanged: u^T J is u itself, and the trick must still work.
    const auto [y, jv] = xg::jvp([](const xg::Tensor& x) { return x + 1.0; }, f64({1, 2}), f64({3, 4}));
    BOOST_TEST(values(jv) == std::vector<double>({3, 4}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(hvp_by_hand) {
    const double a = 0.6, b = -0.4, e = std::exp(b);
    const auto [y, hv] = xg::hvp(scalar_fn, f64({a, b}), f64({1, 2}));
    BOOST_TEST(y.item<double>() == a * a * b + a * e, tt::tolerance(1e-14));
    BOOST_TEST(values(hv)[0] == 2 * b + 2 * (2 * a + e), tt::tolerance(1e-14));
    BOOST_TEST(values(hv)[1] == (2 * a + e) + 2 * a * e, tt::tolerance(1e-14));
}

BOOST_AUTO_TEST_CASE(vjp_jvp_and_hvp_agree_with_the_full_jacobian_and_hessian) {
    xg::manual_seed(3);
    auto f = [](const xg::Tensor& x) { return xg::tanh(xg::matmul(xg::reshape(x, {2, 3}), xg::reshape(x, {3, 2}))); };
    auto x = xg::randn({6}, xg::f64);
    auto u = xg::randn({2, 2}, xg::f64), v = xg::randn({6}, xg::f64);
    const auto J = xg::reshape(xg::jacobian(f, x), {4, 6});
    const auto vj = xg::vjp(f, x, u).second;
    const auto jv = xg::jvp(f, x, v).second;
    const auto vj_ref = xg::matmul(xg::reshape(u, {4}), J), jv_ref = xg::matmul(J, v);
    for (int i = 0; i < 6; ++i) BOOST_TEST(values(vj)[i] == values(vj_ref)[i], tt::tolerance(1e-12));
    for (int i = 0; i < 4; ++i) BOOST_TEST(values(jv)[i] == values(jv_ref)[i], tt::tolerance(1e-12));
    auto g = [&](const xg::Tensor& t) { return xg::sum(f(t) * f(t)); };
    const auto H = xg::hessian(g, x);
    const auto hv = xg::hvp(g, x, v).second, hv_ref = xg::matmul(H, v);
    for (int i = 0; i < 6; ++i) BOOST_TEST(values(hv)[i] == values(hv_ref)[i], tt::tolerance(1e-11));
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) BOOST_TEST(values(H)[i * 6 + j] == values(H)[j * 6 + i], tt::tolerance(1e-11));
}

BOOST_AUTO_TEST_CASE(functional_api_works_under_no_grad) {
    xg::NoGradGuard ng;
    const auto J = xg::jacobian([](const xg::Tensor& t) { return t * t; }, f64({3}));
    BOOST_TEST(values(J)[0] == 6.0);
    BOOST_TEST(!xg::is_grad_enabled());
}

BOOST_AUTO_TEST_SUITE_END()

// User activations, continued (split from test_user_activation.cpp so that the two compile in
// parallel): agreement with the built-in silu, hand-written derivatives, parameters, the op being
// first-class (graph name, DOT, errors, registry), the float32 erfc kernel, the parallel kernel.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

#include "user_activation_util.hpp"

using xg::Tensor;
using namespace user_activation_test;

namespace {
double sig(double x) { return 1 / (1 + std::exp(-x)); }
// One lambda type for the swish tests: each lambda type instantiates the whole derivative chain.
const auto swish_lambda = [](auto x) { return x * xg::sigmoid(x); };
}  // namespace

BOOST_AUTO_TEST_SUITE(user_activation_ops)

BOOST_AUTO_TEST_CASE(user_swish_matches_builtin_silu) {
    auto swish = xg::activation("user_swish", swish_lambda);
    const std::vector<double> xs = {-1e4, -88, -20, -3.3, -1, 0, 0.5, 2, 20, 88, 1e4};
    for (auto dtype : {xg::f64, xg::f32}) {
        const auto u = through_autograd([&](const Tensor& x) { return swish(x); }, xs, dtype);
        const auto b = through_autograd([](const Tensor& x) { return xg::silu(x); }, xs, dtype);
        const double rel = dtype == xg::f64 ? 1e-13 : 1e-6;
        for (std::size_t i = 0; i < xs.size(); ++i)
            for (std::size_t k = 0; k < 3; ++k)
                BOOST_TEST(close(u[k][i], b[k][i], rel, 1e-30),
                           "order " << k << " at " << xs[i] << ": user " << u[k][i] << ", silu " << b[k][i]);
    }
}

// With x requiring grad, a one-lambda activation's forward takes y and f'(x) from one dual pass
// of the lambda: y must be the lambda's plain value (as without grad) and the gradient of a sum
// f'(x), against the closed form of swish, x sigmoid(x), over a sweep with its saturated tails.
BOOST_AUTO_TEST_CASE(forward_with_grad_takes_value_and_derivative_from_one_dual_pass) {
    auto swish = xg::activation("dual_pass_swish", swish_lambda);
    for (auto dtype : {xg::f64, xg::f32}) {
        const Tensor x = xg::linspace(-40, 40, 20001, dtype);
        Tensor plain;
        {
            xg::NoGradGuard no_grad;
            plain = swish(x);
        }
        auto xr = x.detach().requires_grad_();
        const Tensor y = swish(xr);
        xg::sum(y).backward();
        const auto xv = x.to_vector<double>(), p = plain.to_vector<double>(), yv = y.to_vector<double>(),
                   g = xr.grad().to_vector<double>();
        const double rel = dtype == xg::f64 ? 4e-16 : 2.5e-7;
        for (std::size_t i = 0; i < xv.size(); ++i) {
            const double s = sig(xv[i]);
            BOOST_TEST(std::abs(yv[i] - p[i]) <= rel * std::abs(p[i]), "y at " << xv[i]);
            BOOST_TEST(close(yv[i], xv[i] * s, 8 * rel, 1e-30), "y at " << xv[i]);
            BOOST_TEST(close(g[i], s * (1 + xv[i] * (1 - s)), 8 * rel, 4 * rel),
                       "f' at " << xv[i]);  // crosses 0 near -1.28
        }
    }
}

BOOST_AUTO_TEST_CASE(hand_written_derivative_is_what_backward_uses) {
    // A deliberately wrong derivative (twice the true one) shows up in the gradient; the automatic
    // derivative from the same f does not use it.
    auto wrong = xg::activation(
        "wrong_tanh", [](auto x) { return xg::tanh(x); }, [](auto, auto y) { return 2 * (1 - y * y); });
    BOOST_TEST(wrong.hand_written());
    auto x = xg::tensor({0.3, -1.2}, {2}, xg::f64).requires_grad_();
    const auto g = xg::grad({xg::sum(wrong(x))}, {x})[0].to_vector<double>();
    const auto a = wrong.automatic_derivative(x.detach(), 1).to_vector<double>();
    for (std::size_t i = 0; i < 2; ++i) {
        const double t = std::tanh(i == 0 ? 0.3 : -1.2);
        BOOST_TEST(close(g[i], 2 * (1 - t * t)));
        BOOST_TEST(close(a[i], 1 - t * t));
    }
    auto fn = [wrong](const std::vector<Tensor>& in) { return wrong(in[0]); };
    BOOST_TEST(!xg::gradcheck(fn, {x}));
    // Its second derivative is d/dx df(x, y(x)) = d_x df + d_y df * y', where the graph takes y' from
    // the same rule (as PyTorch's sigmoid_backward does): -4y * 2 (1 - y^2).
    const Tensor d1 = xg::grad({xg::sum(wrong(x))}, {x}, {}, true, true)[0];
    const auto d2 = xg::grad({xg::sum(d1)}, {x})[0].to_vector<double>();
    for (std::size_t i = 0; i < 2; ++i) {
        const double t = std::tanh(i == 0 ? 0.3 : -1.2);
        BOOST_TEST(close(d2[i], -8 * t * (1 - t * t)));
    }
}

BOOST_AUTO_TEST_CASE(parameter_gets_its_gradient) {
    auto pswish = xg::activation("pswish", [](auto x, auto beta) { return x * xg::sigmoid(beta * x); });
    BOOST_TEST(pswish.takes_param());
    auto x = xg::tensor({-1.5, 0.5, 2.0}, {3}, xg::f64).requires_grad_();
    auto beta = xg::tensor({1.7}, {}, xg::f64).requires_grad_();
    const Tensor y = pswish(x, beta);
    xg::sum(y).backward();
    // d/dbeta sum x s(beta x) = sum x^2 s (1 - s); d/dx = s + beta x s (1 - s).
    double db = 0;
    const auto gx = x.grad().to_vector<double>();
    const std::vector<double> xs = {-1.5, 0.5, 2.0};
    for (std::size_t i = 0; i < 3; ++i) {
        const double s = sig(1.7 * xs[i]);
        db += xs[i] * xs[i] * s * (1 - s);
        BOOST_TEST(close(gx[i], s + 1.7 * xs[i] * s * (1 - s)));
    }
    BOOST_TEST(close(beta.grad().item<double>(), db));
    // The same function as the built-in swish with a learnable beta.
    beta.zero_grad();
    xg::sum(xg::swish(x.detach(), beta)).backward();
    BOOST_TEST(close(beta.grad().item<double>(), db));
    // A bound parameter: a one-argument activation that still trains beta.
    beta.zero_grad();
    const auto bound = pswish.bind(beta);
    xg::sum(bound(x.detach())).backward();
    BOOST_TEST(close(beta.grad().item<double>(), db));
    BOOST_CHECK_THROW(pswish(x), xg::ValueError);
    BOOST_CHECK_THROW(xg::register_activation(pswish), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(user_activation_is_a_first_class_op) {
    auto act = xg::activation("bent_identity", [](auto x) { return (xg::sqrt(x * x + 1) - 1) / 2 + x; });
    auto x = xg::tensor({0.5, -2.0}, {2}, xg::f64).requires_grad_();
    const Tensor y = act(x);
    BOOST_TEST(y.grad_fn_name() == "bent_identity");
    const Tensor g = xg::grad({xg::sum(y)}, {x}, {}, true, true)[0];
    BOOST_TEST(g.grad_fn_name() == "bent_identity_backward");
    BOOST_TEST(xg::to_dot(y).find("bent_identity") != std::string::npos);
    BOOST_CHECK_EXCEPTION(act(xg::tensor_i64({1, 2})), xg::DtypeError,
                          [](const xg::DtypeError& e) { return std::string(e.what()).find("bent_identity") == 0; });
    // Registered, it is usable by name like a built-in (layers, the lab).
    xg::register_activation(act);
    BOOST_TEST(xg::has_activation("bent_identity"));
    const auto info = xg::activation_info("bent_identity");
    BOOST_TEST(info.elementwise);
    BOOST_TEST(!info.hand_written);
    const auto by_name = xg::get_activation("bent_identity")(x).to_vector<double>();
    BOOST_TEST(close(by_name[0], (std::sqrt(1.25) - 1) / 2 + 0.5));
    BOOST_CHECK_THROW(xg::activation("", [](auto x) { return x; }), xg::ValueError);
}

// xg::erfc on float32 batches has a kernel of its own (erfcc form, one exp): within 6 ulp of the
// float64 value over [-10, 10] where that value is a normal float (xsimd::erfc, used before, was
// off by up to 71 ulp), and the usual edge values.
BOOST_AUTO_TEST_CASE(erfc_of_float32_batches_within_6_ulp) {
    auto act = xg::activation("erfc_user", [](auto x) { return xg::erfc(x); });
    std::vector<double> zv;
    for (int i = -100000; i <= 100000; ++i) zv.push_back(i * 1e-4 + 3.1e-6);
    const double inf = std::numeric_limits<double>::infinity();
    for (double e : {0.0, 1e-8, -1e-8, 1e4, -1e4, inf, -inf}) zv.push_back(e);
    const Tensor z = xg::tensor(zv, {static_cast<std::int64_t>(zv.size())}, xg::f32);
    const auto in = z.to_vector<double>(), out = act(z).to_vector<double>();
    double worst = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const double ref = std::erfc(in[i]);
        if (ref < 1.2e-38) {
            BOOST_TEST(out[i] < 1.2e-38);
            continue;
        }
        worst = std::max(worst, std::fabs(out[i] - ref) / std::ldexp(1.0, std::ilogb(ref) - 23));
    }
    BOOST_TEST(worst <= 6.0);
    const std::size_t e = in.size() - 7;
    BOOST_TEST(out[e] == 1.0);
    BOOST_TEST(out[e + 3] == 0.0);
    BOOST_TEST(out[e + 4] == 2.0);
    BOOST_TEST(out[e + 5] == 0.0);
    BOOST_TEST(out[e + 6] == 2.0);
    BOOST_TEST(std::isnan(act(xg::tensor({std::nan("")}, {1}, xg::f32)).to_vector<double>()[0]));
}

BOOST_AUTO_TEST_CASE(large_tensors_run_the_vectorised_parallel_kernel) {
    // More elements than the grain (parallel) and than the streaming threshold (32 MiB of float32),
    // with a ragged tail.
    auto act = xg::activation("softsign_user", [](auto x) { return x / (1 + xg::abs(x)); });
    xg::manual_seed(4);
    const std::int64_t n = (std::int64_t(1) << 23) + 13;
    auto x = xg::randn({n}, xg::f32).requires_grad_();
    const Tensor y = act(x);
    xg::sum(y).backward();
    const auto xv = x.to_vector<float>(), yv = y.to_vector<float>(), gv = x.grad().to_vector<float>();
    for (std::int64_t i : {std::int64_t(0), std::int64_t(1), n / 2, n - 14, n - 1}) {
        const double xi = xv[static_cast<std::size_t>(i)];
        BOOST_TEST(close(yv[static_cast<std::size_t>(i)], xi / (1 + std::fabs(xi)), 1e-6, 1e-7));
        BOOST_TEST(close(gv[static_cast<std::size_t>(i)], 1 / ((1 + std::fabs(xi)) * (1 + std::fabs(xi))), 1e-6, 1e-7));
    }
}
BOOST_AUTO_TEST_SUITE_END()

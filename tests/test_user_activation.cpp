// User activations from one generic lambda: dual numbers, scalar math on every type, automatic first
// and second derivatives against closed forms, hand-written derivatives, parameters, and the op
// being first-class (graph name, DOT, errors, registry).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <vector>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

#include "user_activation_util.hpp"

using xg::Tensor;
using namespace user_activation_test;

namespace {
// f(x) = x^3 - 2x + sin x + e^(-x^2) / 2 and its derivatives, derived by hand.
auto poly = [](auto x) { return xg::pow(x, 3) - 2 * x + xg::sin(x) + xg::exp(-x * x) * 0.5; };
double poly_d1(double x) { return 3 * x * x - 2 + std::cos(x) - x * std::exp(-x * x); }
double poly_d2(double x) { return 6 * x - std::sin(x) + (2 * x * x - 1) * std::exp(-x * x); }
double poly_d3(double x) { return 6 - std::cos(x) + (6 * x - 4 * x * x * x) * std::exp(-x * x); }

const std::vector<double> kXs = {-2.5, -1.1, -0.3, 0.0, 0.4, 1.7, 3.2};
}  // namespace

BOOST_AUTO_TEST_SUITE(user_activation)

BOOST_AUTO_TEST_CASE(dual_numbers_carry_derivatives_of_any_order) {
    for (double x : kXs) {
        BOOST_TEST(close(xg::derivative(poly, x), poly_d1(x)));
        BOOST_TEST(close(xg::nth_derivative<2>(poly, x), poly_d2(x)));
        BOOST_TEST(close(xg::nth_derivative<3>(poly, x), poly_d3(x), 1e-11));
    }
    // Arithmetic by hand: (x^2 / (1 + x))' at x = 2 is (x^2 + 2x) / (1 + x)^2 = 8/9.
    const xg::Dual<double> v = xg::make_variable(2.0);
    const auto q = v * v / (1 + v);
    BOOST_TEST(close(q.v, 4.0 / 3.0));
    BOOST_TEST(close(q.d, 8.0 / 9.0));
    // Mixed partials of x e^(a x): d/da = x^2 e^(ax), d2/dxda = (2x + a x^2) e^(ax).
    auto h = [](auto x, auto a) { return x * xg::exp(a * x); };
    BOOST_TEST(close(xg::mixed_partial<0, 1>(h, 0.7, 1.3), 0.49 * std::exp(0.91)));
    BOOST_TEST(close(xg::mixed_partial<1, 1>(h, 0.7, 1.3), (1.4 + 1.3 * 0.49) * std::exp(0.91)));
}

BOOST_AUTO_TEST_CASE(scalar_math_runs_on_floats_doubles_batches_and_duals) {
    auto f = [](auto x) {
        return xg::where(x > 0, xg::log1p(x), xg::expm1(x)) + xg::tanh(x) * xg::erf(x) - xg::sqrt(xg::abs(x) + 1) +
               xg::pow(x * x + 1, 0.5) + xg::max(x, 0.25) + xg::min(x, -0.25) + xg::softplus(x) + xg::erfc(x) +
               xg::sigmoid(x) + xg::cos(x) + xg::log(x * x + 2) + xg::pow(2.0, x) + xg::clamp(x, -1.0, 1.0);
    };
    using B = xsimd::batch<double>;
    using BF = xsimd::batch<float>;
    for (double x : kXs) {
        const double d = f(x);
        BOOST_TEST(close(static_cast<double>(f(static_cast<float>(x))), d, 1e-5, 1e-5));
        BOOST_TEST(close(f(B(x)).get(0), d));
        BOOST_TEST(close(static_cast<double>(f(BF(static_cast<float>(x))).get(BF::size - 1)), d, 1e-5, 1e-5));
        BOOST_TEST(close(f(xg::Dual<double>(x)).v, d));
        // The derivative through batches of duals equals the scalar one.
        BOOST_TEST(close(xg::derivative(f, B(x)).get(1), xg::derivative(f, x)));
    }
    // Kink conventions: max picks its second argument at ties, |x|'(0) = 0, where differentiates
    // the side it picks.
    BOOST_TEST(xg::derivative([](auto x) { return xg::max(x, 0.0); }, 0.0) == 0.0);
    BOOST_TEST(xg::derivative([](auto x) { return xg::abs(x); }, 0.0) == 0.0);
    BOOST_TEST(xg::derivative([](auto x) { return xg::where(x >= 0, x, 0.0); }, 0.0) == 1.0);
    BOOST_TEST(xg::derivative([](auto x) { return xg::stop_gradient(x) * x; }, 3.0) == 3.0);
    // An overflow in the branch that where() discards does not leak into the value or derivative.
    auto elu_like = [](auto x) { return xg::where(x > 0, x, xg::exp(x) - 1); };
    BOOST_TEST(xg::derivative(elu_like, 1e4) == 1.0);
    BOOST_TEST(xg::derivative(elu_like, xsimd::batch<float>(100.0f)).get(0) == 1.0f);
}

BOOST_AUTO_TEST_CASE(automatic_first_and_second_derivatives_match_closed_forms) {
    auto act = xg::activation("poly", poly);
    const auto r = through_autograd([&](const Tensor& x) { return act(x); }, kXs);
    for (std::size_t i = 0; i < kXs.size(); ++i) {
        BOOST_TEST_CONTEXT("x = " << kXs[i]) {
            BOOST_TEST(close(r[0][i], poly(kXs[i])));
            BOOST_TEST(close(r[1][i], poly_d1(kXs[i])));
            BOOST_TEST(close(r[2][i], poly_d2(kXs[i])));
        }
    }
    // The same in float32 (rounding tolerance) and through the kernel's automatic derivative.
    const auto rf = through_autograd([&](const Tensor& x) { return act(x); }, kXs, xg::f32);
    const auto auto1 = act.automatic_derivative(xg::tensor(kXs, {-1}, xg::f64), 1).to_vector<double>();
    const auto auto2 = act.automatic_derivative(xg::tensor(kXs, {-1}, xg::f64), 2).to_vector<double>();
    for (std::size_t i = 0; i < kXs.size(); ++i) {
        BOOST_TEST(close(rf[1][i], poly_d1(kXs[i]), 1e-5, 1e-5));
        BOOST_TEST(close(rf[2][i], poly_d2(kXs[i]), 1e-5, 1e-5));
        BOOST_TEST(close(auto1[i], poly_d1(kXs[i])));
        BOOST_TEST(close(auto2[i], poly_d2(kXs[i])));
    }
    // Third order: through name_backward2's own gradient (name_backward3).
    auto x = xg::tensor(kXs, {-1}, xg::f64).requires_grad_();
    const Tensor d1 = xg::grad({xg::sum(act(x))}, {x}, {}, true, true)[0];
    const Tensor d2 = xg::grad({xg::sum(d1)}, {x}, {}, true, true)[0];
    const auto d3 = xg::grad({xg::sum(d2)}, {x})[0].to_vector<double>();
    for (std::size_t i = 0; i < kXs.size(); ++i) BOOST_TEST(close(d3[i], poly_d3(kXs[i]), 1e-11));
}

BOOST_AUTO_TEST_CASE(gradcheck_and_gradgradcheck_of_user_activations) {
    auto smooth = xg::activation("smooth", [](auto x) { return x * xg::tanh(xg::softplus(x)) + xg::erf(x) / 3; });
    auto kinked = xg::activation("kinked", [](auto x) { return xg::where(x > 0, x * x, 0.1 * x); });
    auto hand = xg::activation(
        "hand_sigmoid", [](auto x) { return 1 / (1 + xg::exp(-x)); }, [](auto, auto y) { return y * (1 - y); });
    auto param = xg::activation("param_swish", [](auto x, auto beta) { return x * xg::sigmoid(beta * x); });
    auto x = xg::tensor({-2.1, -0.7, 0.3, 1.2, 2.9, -4.4}, {2, 3}, xg::f64).requires_grad_();
    auto beta = xg::tensor({0.8, 1.5, 2.0}, {3}, xg::f64).requires_grad_();
    for (const auto& act : {smooth, kinked, hand}) {
        auto f = [act](const std::vector<Tensor>& in) { return act(in[0]); };
        XG_CHECK_GRAD(f, {x});
        XG_CHECK_GRADGRAD(f, {x});
    }
    auto fp = [param](const std::vector<Tensor>& in) { return param(in[0], in[1]); };
    XG_CHECK_GRAD(fp, {x, beta});
    XG_CHECK_GRADGRAD(fp, {x, beta});
}

// A one-lambda activation computes f' by duals in its forward pass when x requires grad (and keeps
// it for backward): the forward values must not depend on that, the gradient of a backward that
// records no graph must agree with the derivative op a create_graph backward records, and both
// with the closed form f'(x) = 0.9 x^2 + 1.4 x + tanh(u) + 1.3 x (1 - tanh(u)^2), u = 1.3 x + 0.2.
BOOST_AUTO_TEST_CASE(forward_values_and_gradients_do_not_depend_on_the_saved_derivative) {
    const auto poly =
        xg::activation("poly", [](auto x) { return x * x * x * 0.3 + x * x * 0.7 + x * xg::tanh(x * 1.3 + 0.2); });
    for (const xg::Dtype dtype : {xg::f32, xg::f64}) {
        const std::int64_t n = 70001;
        std::vector<double> xv(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) xv[i] = std::sin(0.37 * static_cast<double>(i)) * 4;
        auto x = xg::tensor(xv, {n}, dtype).requires_grad_();
        const Tensor y = poly(x);
        Tensor y_no_grad;
        {
            xg::NoGradGuard ng;
            y_no_grad = poly(x);
        }
        const auto yv = y.to_vector<double>(), nv = y_no_grad.to_vector<double>();
        std::int64_t differ = 0;
        for (std::int64_t i = 0; i < n; ++i) differ += yv[i] != nv[i];
        BOOST_TEST(differ == 0);

        const auto fast = xg::grad({xg::sum(poly(x))}, {x})[0].to_vector<double>();
        const auto recorded = xg::grad({xg::sum(poly(x))}, {x}, {}, false, true)[0].to_vector<double>();
        const double eps = dtype == xg::f32 ? 0x1p-23 : 0x1p-52;
        double worst_vs_recorded = 0, worst_vs_closed_form = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const double t = xv[i], th = std::tanh(1.3 * t + 0.2);
            const double d = 0.9 * t * t + 1.4 * t + th + 1.3 * t * (1 - th * th);
            worst_vs_recorded = std::max(worst_vs_recorded, std::abs(fast[i] - recorded[i]) / (1 + std::abs(d)));
            worst_vs_closed_form = std::max(worst_vs_closed_form, std::abs(fast[i] - d) / (1 + std::abs(d)));
        }
        BOOST_TEST(worst_vs_recorded <= 8 * eps);
        BOOST_TEST(worst_vs_closed_form <= 64 * eps);
    }
}

BOOST_AUTO_TEST_SUITE_END()

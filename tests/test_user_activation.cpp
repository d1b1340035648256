// User activations from one generic lambda: dual numbers, scalar math on every type, automatic first
// and second derivatives against closed forms, hand-written derivatives, parameters, and the op
// being first-class (graph name, DOT, errors, registry).
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

using xg::Tensor;

namespace {
bool close(double a, double b, double rel = 1e-12, double abs = 1e-14) {
    return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)) + abs;
}
double sig(double x) { return 1 / (1 + std::exp(-x)); }

// f(x) = x^3 - 2x + sin x + e^(-x^2) / 2 and its derivatives, derived by hand.
auto poly = [](auto x) { return xg::pow(x, 3) - 2 * x + xg::sin(x) + xg::exp(-x * x) * 0.5; };
double poly_d1(double x) { return 3 * x * x - 2 + std::cos(x) - x * std::exp(-x * x); }
double poly_d2(double x) { return 6 * x - std::sin(x) + (2 * x * x - 1) * std::exp(-x * x); }
double poly_d3(double x) { return 6 - std::cos(x) + (6 * x - 4 * x * x * x) * std::exp(-x * x); }

const std::vector<double> kXs = {-2.5, -1.1, -0.3, 0.0, 0.4, 1.7, 3.2};

// Values, f' and f'' of an activation through autograd (backward and double backward).
std::array<std::vector<double>, 3> through_autograd(const std::function<Tensor(const Tensor&)>& act,
                                                    const std::vector<double>& xs, xg::Dtype dtype = xg::f64) {
    auto x = xg::tensor(xs, {-1}, dtype).requires_grad_();
    const Tensor y = act(x);
    const Tensor d1 = xg::grad({xg::sum(y)}, {x}, {}, true, true)[0];
    const Tensor d2 = xg::grad({xg::sum(d1)}, {x})[0];
    return {y.to_vector<double>(), d1.to_vector<double>(), d2.to_vector<double>()};
}
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

BOOST_AUTO_TEST_CASE(user_swish_matches_builtin_silu) {
    auto swish = xg::activation("user_swish", [](auto x) { return x * xg::sigmoid(x); });
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

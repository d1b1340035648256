// Built-in activations: gradients (one table through gradcheck + gradgradcheck), values and first
// and second derivatives against closed forms (PyTorch's conventions at the kinks), extreme inputs,
// what forward saves, and errors.
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <numbers>
#include <ostream>
#include <string>
#include <vector>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

namespace bdata = boost::unit_test::data;
using xg::Tensor;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// One row of the gradient table: a function of its inputs and how to make them.
struct GradCase {
    std::string name;
    Fn fn;
    std::function<std::vector<Tensor>()> inputs;
};
std::ostream& operator<<(std::ostream& os, const GradCase& c) { return os << c.name; }

// Points away from every kink of the built-ins (0, +-0.5, +-1, +-3, 6, 20).
Tensor sample(xg::Shape shape = {2, 7}) {
    static const std::vector<double> pts = {-3.7, -2.2, -1.3, -0.8, -0.6, -0.2, 0.3,
                                            0.7,  1.4,  2.6,  3.9,  7.5,  -6.1, 4.4};
    std::vector<double> v(static_cast<std::size_t>(xg::shape_numel(shape)));
    for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = pts[i % pts.size()] * (1.0 + 0.01 * static_cast<double>(i / pts.size()));
    return xg::tensor(v, shape, xg::f64).requires_grad_();
}

GradCase unary(const std::string& name, std::function<Tensor(const Tensor&)> f) {
    return {name, [f](const std::vector<Tensor>& in) { return f(in[0]); },
            [] { return std::vector<Tensor>{sample()}; }};
}

// Adding a row here gives the activation a gradcheck and a gradgradcheck.
std::vector<GradCase> grad_cases() {
    std::vector<GradCase> c = {
        unary("sigmoid", [](const Tensor& x) { return xg::sigmoid(x); }),
        unary("tanh", [](const Tensor& x) { return xg::tanh(x); }),
        unary("relu", [](const Tensor& x) { return xg::relu(x); }),
        unary("relu6", [](const Tensor& x) { return xg::relu6(x); }),
        unary("hardtanh", [](const Tensor& x) { return xg::hardtanh(x, -2.0, 1.5); }),
        unary("leaky_relu", [](const Tensor& x) { return xg::leaky_relu(x, 0.07); }),
        unary("rrelu_eval", [](const Tensor& x) { return xg::rrelu(x); }),
        unary("rrelu_train",
              [](const Tensor& x) {
                  xg::manual_seed(11);  // the same slopes at every evaluation
                  return xg::rrelu(x, 0.1, 0.4, true);
              }),
        unary("elu", [](const Tensor& x) { return xg::elu(x, 1.3); }),
        unary("elu_negative_alpha", [](const Tensor& x) { return xg::elu(x, -0.4); }),
        unary("selu", [](const Tensor& x) { return xg::selu(x); }),
        unary("celu", [](const Tensor& x) { return xg::celu(x, 0.7); }),
        unary("gelu", [](const Tensor& x) { return xg::gelu(x); }),
        unary("gelu_tanh", [](const Tensor& x) { return xg::gelu(x, "tanh"); }),
        unary("silu", [](const Tensor& x) { return xg::silu(x); }),
        unary("swish", [](const Tensor& x) { return xg::swish(x, 1.7); }),
        unary("mish", [](const Tensor& x) { return xg::mish(x); }),
        unary("softplus", [](const Tensor& x) { return xg::softplus(x, 2.0, 5.0); }),
        unary("softplus_beta_1", [](const Tensor& x) { return xg::softplus(x, 1.0, 3.0); }),
        unary("softsign", [](const Tensor& x) { return xg::softsign(x); }),
        unary("hardsigmoid", [](const Tensor& x) { return xg::hardsigmoid(x); }),
        unary("hardswish", [](const Tensor& x) { return xg::hardswish(x); }),
        unary("log_sigmoid", [](const Tensor& x) { return xg::log_sigmoid(x); }),
        unary("tanhshrink", [](const Tensor& x) { return xg::tanhshrink(x); }),
        unary("softshrink", [](const Tensor& x) { return xg::softshrink(x, 0.5); }),
        unary("hardshrink", [](const Tensor& x) { return xg::hardshrink(x, 0.5); }),
        unary("threshold", [](const Tensor& x) { return xg::threshold(x, 0.1, -2.0); }),
        unary("step", [](const Tensor& x) { return xg::step(x); }),
        unary("heaviside", [](const Tensor& x) { return xg::heaviside(x, 0.5); }),
        unary("glu_last",
              [](const Tensor& x) {
                  return xg::glu(xg::reshape(x, {7, 2}), -1);
              }),
        unary("glu_first", [](const Tensor& x) { return xg::glu(x, 0); }),
        unary("softmax_last", [](const Tensor& x) { return xg::softmax(x, -1); }),
        unary("log_softmax_last", [](const Tensor& x) { return xg::log_softmax(x, -1); }),
        unary("softmin_last", [](const Tensor& x) { return xg::softmin(x, -1); }),
    };
    // Along a middle axis with 9 rows side by side (one full float64 batch of 8 and a tail lane).
    auto wide = [] { return std::vector<Tensor>{sample({3, 4, 9})}; };
    c.push_back({"softmax_middle", [](const std::vector<Tensor>& in) { return xg::softmax(in[0], 1); }, wide});
    c.push_back({"log_softmax_middle", [](const std::vector<Tensor>& in) { return xg::log_softmax(in[0], 1); }, wide});
    c.push_back({"softmin_first", [](const std::vector<Tensor>& in) { return xg::softmin(in[0], 0); }, wide});
    c.push_back({"glu_middle", [](const std::vector<Tensor>& in) { return xg::glu(in[0], 1); }, wide});
    // Learnable parameters get gradients too.
    c.push_back(
        {"prelu_per_channel", [](const std::vector<Tensor>& in) { return xg::prelu(in[0], in[1]); },
         [] {
             return std::vector<Tensor>{sample({2, 3, 4}), xg::tensor({0.2, -0.3, 0.6}, {3}, xg::f64).requires_grad_()};
         }});
    c.push_back({"prelu_shared", [](const std::vector<Tensor>& in) { return xg::prelu(in[0], in[1]); },
                 [] {
                     return std::vector<Tensor>{sample(), xg::tensor({0.25}, {1}, xg::f64).requires_grad_()};
                 }});
    c.push_back({"swish_learnable_beta", [](const std::vector<Tensor>& in) { return xg::swish(in[0], in[1]); },
                 [] {
                     return std::vector<Tensor>{sample(), xg::tensor({1.3}, {}, xg::f64).requires_grad_()};
                 }});
    return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(activations)

BOOST_DATA_TEST_CASE(gradcheck_and_gradgradcheck, bdata::make(grad_cases()), c) {
    const auto inputs = c.inputs();
    XG_CHECK_GRAD(c.fn, inputs);
    XG_CHECK_GRADGRAD(c.fn, inputs);
}

BOOST_AUTO_TEST_CASE(step_surrogate_rule_is_differentiable) {
    // The sigmoid surrogate is a rule of its own (not f'); its second derivative must match it.
    auto f = [](const std::vector<Tensor>& in) {
        xg::EnableGradGuard enable;  // gradcheck evaluates under no-grad; this function needs a graph
        xg::StepOptions o;
        o.surrogate = xg::StepSurrogate::sigmoid;
        o.slope = 3.0;
        o.threshold = 0.2;
        const Tensor y = xg::step(in[0], o);
        return xg::grad({xg::sum(y * in[1])}, {in[0]}, {}, true, true)[0];
    };
    auto x = sample();
    auto w = xg::tensor(std::vector<double>(14, 0.7), {2, 7}, xg::f64).requires_grad_();
    XG_CHECK_GRAD(f, {x, w});
}

// ---- closed forms ----------------------------------------------------------------------------------
namespace {
double sig(double x) { return 1 / (1 + std::exp(-x)); }

struct Closed {
    std::string name;
    std::function<Tensor(const Tensor&)> act;
    std::function<double(double)> f, d1, d2;
};
std::ostream& operator<<(std::ostream& os, const Closed& c) { return os << c.name; }

constexpr double kAlpha = 1.6732632423543772848170429916717, kScale = 1.0507009873554804934193349852946;

// f, f' and f'' derived by hand, with PyTorch's values at the kinks (the points below include them).
std::vector<Closed> closed_forms() {
    const double pi = std::numbers::pi;
    return {
        {"sigmoid", [](const Tensor& x) { return xg::sigmoid(x); }, [](double x) { return sig(x); },
         [](double x) { return sig(x) * (1 - sig(x)); },
         [](double x) { return sig(x) * (1 - sig(x)) * (1 - 2 * sig(x)); }},
        {"tanh", [](const Tensor& x) { return xg::tanh(x); }, [](double x) { return std::tanh(x); },
         [](double x) { return 1 - std::tanh(x) * std::tanh(x); },
         [](double x) { return -2 * std::tanh(x) * (1 - std::tanh(x) * std::tanh(x)); }},
        {"relu", [](const Tensor& x) { return xg::relu(x); }, [](double x) { return x > 0 ? x : 0.0; },
         [](double x) { return x > 0 ? 1.0 : 0.0; }, [](double) { return 0.0; }},
        {"relu6", [](const Tensor& x) { return xg::relu6(x); },
         [](double x) { return std::min(std::max(x, 0.0), 6.0); }, [](double x) { return x > 0 && x < 6 ? 1.0 : 0.0; },
         [](double) { return 0.0; }},
        {"hardtanh", [](const Tensor& x) { return xg::hardtanh(x); },
         [](double x) { return std::min(std::max(x, -1.0), 1.0); },
         [](double x) { return x > -1 && x < 1 ? 1.0 : 0.0; }, [](double) { return 0.0; }},
        {"leaky_relu", [](const Tensor& x) { return xg::leaky_relu(x, 0.2); },
         [](double x) { return x > 0 ? x : 0.2 * x; }, [](double x) { return x > 0 ? 1.0 : 0.2; },
         [](double) { return 0.0; }},
        {"elu", [](const Tensor& x) { return xg::elu(x, 1.3); },
         [](double x) { return x > 0 ? x : 1.3 * std::expm1(x); },
         [](double x) { return x > 0 ? 1.0 : 1.3 * std::exp(x); },
         [](double x) { return x > 0 ? 0.0 : 1.3 * std::exp(x); }},
        {"elu_negative_alpha", [](const Tensor& x) { return xg::elu(x, -0.5); },
         [](double x) { return x > 0 ? x : -0.5 * std::expm1(x); },
         [](double x) { return x > 0 ? 1.0 : -0.5 * std::exp(x); },
         [](double x) { return x > 0 ? 0.0 : -0.5 * std::exp(x); }},
        {"selu", [](const Tensor& x) { return xg::selu(x); },
         [](double x) { return kScale * (x > 0 ? x : kAlpha * std::expm1(x)); },
         [](double x) { return kScale * (x > 0 ? 1.0 : kAlpha * std::exp(x)); },
         [](double x) { return x > 0 ? 0.0 : kScale * kAlpha * std::exp(x); }},
        {"celu", [](const Tensor& x) { return xg::celu(x, 0.8); },
         [](double x) { return x > 0 ? x : 0.8 * std::expm1(x / 0.8); },
         [](double x) { return x > 0 ? 1.0 : std::exp(x / 0.8); },
         [](double x) { return x > 0 ? 0.0 : std::exp(x / 0.8) / 0.8; }},
        {"gelu", [](const Tensor& x) { return xg::gelu(x); },
         [](double x) { return x * 0.5 * std::erfc(-x / std::sqrt(2.0)); },
         [pi](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)) + x * std::exp(-x * x / 2) / std::sqrt(2 * pi); },
         [pi](double x) { return std::exp(-x * x / 2) / std::sqrt(2 * pi) * (2 - x * x); }},
        // tanh form with q = 2u, S = sigmoid(q) = (1 + tanh(u)) / 2 (no cancellation):
        // f = x S, f' = S + x S(1-S) q', f'' = 2 S(1-S) q' + x (S(1-S)(1-2S) q'^2 + S(1-S) q'').
        {"gelu_tanh", [](const Tensor& x) { return xg::gelu(x, "tanh"); },
         [pi](double x) { return x * sig(2 * std::sqrt(2 / pi) * (x + 0.044715 * x * x * x)); },
         [pi](double x) {
             const double k = std::sqrt(2 / pi), S = sig(2 * k * (x + 0.044715 * x * x * x));
             return S + x * S * (1 - S) * 2 * k * (1 + 3 * 0.044715 * x * x);
         },
         [pi](double x) {
             const double k = std::sqrt(2 / pi), S = sig(2 * k * (x + 0.044715 * x * x * x));
             const double q1 = 2 * k * (1 + 3 * 0.044715 * x * x), q2 = 2 * k * 6 * 0.044715 * x;
             return 2 * S * (1 - S) * q1 + x * (S * (1 - S) * (1 - 2 * S) * q1 * q1 + S * (1 - S) * q2);
         }},
        {"silu", [](const Tensor& x) { return xg::silu(x); }, [](double x) { return x * sig(x); },
         [](double x) { return sig(x) + x * sig(x) * (1 - sig(x)); },
         [](double x) { return 2 * sig(x) * (1 - sig(x)) + x * sig(x) * (1 - sig(x)) * (1 - 2 * sig(x)); }},
        {"swish", [](const Tensor& x) { return xg::swish(x, 1.5); }, [](double x) { return x * sig(1.5 * x); },
         [](double x) { return sig(1.5 * x) + 1.5 * x * sig(1.5 * x) * (1 - sig(1.5 * x)); },
         [](double x) {
             const double s = sig(1.5 * x);
             return 2 * 1.5 * s * (1 - s) + 1.5 * 1.5 * x * s * (1 - s) * (1 - 2 * s);
         }},
        {"mish", [](const Tensor& x) { return xg::mish(x); },
         [](double x) { return x * std::tanh(std::log1p(std::exp(x))); },
         [](double x) {
             const double t = std::tanh(std::log1p(std::exp(x)));
             return t + x * sig(x) * (1 - t * t);
         },
         [](double x) {
             const double t = std::tanh(std::log1p(std::exp(x))), s = sig(x);
             return 2 * s * (1 - t * t) + x * (s * (1 - s) * (1 - t * t) - 2 * t * (1 - t * t) * s * s);
         }},
        {"softplus", [](const Tensor& x) { return xg::softplus(x, 2.0, 4.0); },
         [](double x) { return 2 * x > 4 ? x : std::log1p(std::exp(2 * x)) / 2; },
         [](double x) { return 2 * x > 4 ? 1.0 : sig(2 * x); },
         [](double x) { return 2 * x > 4 ? 0.0 : 2 * sig(2 * x) * (1 - sig(2 * x)); }},
        {"softplus_beta_1", [](const Tensor& x) { return xg::softplus(x, 1.0, 3.0); },
         [](double x) { return x > 3 ? x : std::log1p(std::exp(x)); }, [](double x) { return x > 3 ? 1.0 : sig(x); },
         [](double x) { return x > 3 ? 0.0 : sig(x) * (1 - sig(x)); }},
        {"softsign", [](const Tensor& x) { return xg::softsign(x); }, [](double x) { return x / (1 + std::fabs(x)); },
         [](double x) { return 1 / ((1 + std::fabs(x)) * (1 + std::fabs(x))); },
         [](double x) {
             return -2 * (x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0) / std::pow(1 + std::fabs(x), 3);
         }},
        {"hardsigmoid", [](const Tensor& x) { return xg::hardsigmoid(x); },
         [](double x) { return x <= -3  ? 0.0
                               : x >= 3 ? 1.0
                                        : x / 6 + 0.5; },
         [](double x) { return x > -3 && x < 3 ? 1.0 / 6 : 0.0; }, [](double) { return 0.0; }},
        {"hardswish", [](const Tensor& x) { return xg::hardswish(x); },
         [](double x) { return x <= -3  ? 0.0
                               : x >= 3 ? x
                                        : x * (x + 3) / 6; },
         [](double x) { return x < -3   ? 0.0
                               : x <= 3 ? x / 3 + 0.5
                                        : 1.0; },
         [](double x) { return x > -3 && x < 3 ? 1.0 / 3 : 0.0; }},
        {"log_sigmoid", [](const Tensor& x) { return xg::log_sigmoid(x); }, [](double x) { return std::log(sig(x)); },
         [](double x) { return 1 - sig(x); }, [](double x) { return -sig(x) * (1 - sig(x)); }},
        {"tanhshrink", [](const Tensor& x) { return xg::tanhshrink(x); }, [](double x) { return x - std::tanh(x); },
         [](double x) { return std::tanh(x) * std::tanh(x); },
         [](double x) { return 2 * std::tanh(x) * (1 - std::tanh(x) * std::tanh(x)); }},
        {"softshrink", [](const Tensor& x) { return xg::softshrink(x, 0.5); },
         [](double x) { return x > 0.5    ? x - 0.5
                               : x < -0.5 ? x + 0.5
                                          : 0.0; },
         [](double x) { return std::fabs(x) > 0.5 ? 1.0 : 0.0; }, [](double) { return 0.0; }},
        {"hardshrink", [](const Tensor& x) { return xg::hardshrink(x, 0.5); },
         [](double x) { return std::fabs(x) > 0.5 ? x : 0.0; }, [](double x) { return std::fabs(x) > 0.5 ? 1.0 : 0.0; },
         [](double) { return 0.0; }},
        {"threshold", [](const Tensor& x) { return xg::threshold(x, 1.0, -4.0); },
         [](double x) { return x > 1 ? x : -4.0; }, [](double x) { return x > 1 ? 1.0 : 0.0; },
         [](double) { return 0.0; }},
        {"step", [](const Tensor& x) { return xg::step(x); }, [](double x) { return x >= 0 ? 1.0 : 0.0; },
         [](double) { return 0.0; }, [](double) { return 0.0; }},
        {"heaviside", [](const Tensor& x) { return xg::heaviside(x, 0.25); },
         [](double x) { return x > 0   ? 1.0
                               : x < 0 ? 0.0
                                       : 0.25; }, [](double) { return 0.0; },
         [](double) { return 0.0; }},
        {"rrelu_eval", [](const Tensor& x) { return xg::rrelu(x, 0.1, 0.3); },
         [](double x) { return x > 0 ? x : 0.2 * x; }, [](double x) { return x > 0 ? 1.0 : 0.2; },
         [](double) { return 0.0; }},
    };
}

// Includes every kink of the built-ins above.
const std::vector<double> kPoints = {-25, -7.5, -3, -2.2, -1, -0.5, -0.3, 0, 0.3, 0.5, 1, 2, 2.2, 3, 6, 7.5, 25};

bool close(double a, double b, double rel = 1e-10, double abs = 1e-13) {
    if (std::isnan(a) || std::isnan(b)) return false;
    return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)) + abs;
}

// f, f', f'' of an elementwise activation at points, through autograd (backward and double backward).
std::array<std::vector<double>, 3> values_and_derivatives(const std::function<Tensor(const Tensor&)>& act,
                                                          const std::vector<double>& pts, xg::Dtype dtype) {
    auto x = xg::tensor(pts, {-1}, dtype).requires_grad_();
    const Tensor y = act(x);
    const Tensor d1 = xg::grad({xg::sum(y)}, {x}, {}, true, true)[0];
    std::vector<double> d2(pts.size(), 0.0);
    if (d1.requires_grad()) {
        const Tensor g2 = xg::grad({xg::sum(d1)}, {x}, {}, false, false, true)[0];
        if (g2.defined()) d2 = g2.to_vector<double>();
    }
    return {y.to_vector<double>(), d1.to_vector<double>(), d2};
}
}  // namespace

BOOST_DATA_TEST_CASE(values_and_two_derivatives_match_closed_forms, bdata::make(closed_forms()), c) {
    const auto r = values_and_derivatives(c.act, kPoints, xg::f64);
    for (std::size_t i = 0; i < kPoints.size(); ++i) {
        const double x = kPoints[i];
        BOOST_TEST_CONTEXT(c.name << " at x = " << x) {
            BOOST_TEST(close(r[0][i], c.f(x)), "f = " << r[0][i] << ", expected " << c.f(x));
            BOOST_TEST(close(r[1][i], c.d1(x)), "f' = " << r[1][i] << ", expected " << c.d1(x));
            BOOST_TEST(close(r[2][i], c.d2(x), 1e-9, 1e-12), "f'' = " << r[2][i] << ", expected " << c.d2(x));
        }
    }
}

BOOST_DATA_TEST_CASE(float32_agrees_with_float64, bdata::make(closed_forms()), c) {
    const auto r = values_and_derivatives(c.act, kPoints, xg::f32);
    for (std::size_t i = 0; i < kPoints.size(); ++i) {
        BOOST_TEST_CONTEXT(c.name << " at x = " << kPoints[i]) {
            BOOST_TEST(close(r[0][i], c.f(kPoints[i]), 2e-6, 1e-6));
            BOOST_TEST(close(r[1][i], c.d1(kPoints[i]), 2e-5, 1e-6));
        }
    }
}

BOOST_AUTO_TEST_CASE(kink_conventions_are_pytorchs) {
    auto d1 = [](const std::function<Tensor(const Tensor&)>& act, double x) {
        return values_and_derivatives(act, {x}, xg::f64)[1][0];
    };
    BOOST_TEST(d1([](const Tensor& x) { return xg::relu(x); }, 0.0) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::relu6(x); }, 0.0) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::relu6(x); }, 6.0) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::hardtanh(x); }, -1.0) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::hardtanh(x); }, 1.0) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::leaky_relu(x, 0.3); }, 0.0) == 0.3);
    BOOST_TEST(d1([](const Tensor& x) { return xg::elu(x, 2.0); }, 0.0) == 2.0);
    BOOST_TEST(close(d1([](const Tensor& x) { return xg::selu(x); }, 0.0), kScale * kAlpha));
    BOOST_TEST(d1([](const Tensor& x) { return xg::celu(x, 3.0); }, 0.0) == 1.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::hardsigmoid(x); }, -3.0) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::hardsigmoid(x); }, 3.0) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::hardswish(x); }, -3.0) == -0.5);
    BOOST_TEST(d1([](const Tensor& x) { return xg::hardswish(x); }, 3.0) == 1.5);
    BOOST_TEST(d1([](const Tensor& x) { return xg::softshrink(x, 0.5); }, 0.5) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::hardshrink(x, 0.5); }, -0.5) == 0.0);
    BOOST_TEST(d1([](const Tensor& x) { return xg::threshold(x, 1.0, 0.0); }, 1.0) == 0.0);
    auto w = xg::tensor({0.3}, {1}, xg::f64);
    BOOST_TEST(d1([w](const Tensor& x) { return xg::prelu(x, w); }, 0.0) == 0.3);
}

BOOST_AUTO_TEST_CASE(extreme_inputs_give_no_inf_or_nan) {
    const std::vector<double> pts = {-1e4, -88, -20, 20, 88, 1e4};
    for (const auto& name : xg::activation_names()) {
        const auto info = xg::activation_info(name);
        if (!info.elementwise) continue;
        for (auto dtype : {xg::f32, xg::f64}) {
            const auto r = values_and_derivatives(info.fn, pts, dtype);
            for (std::size_t k = 0; k < 3; ++k)
                for (std::size_t i = 0; i < pts.size(); ++i)
                    BOOST_TEST(std::isfinite(r[k][i]), name << ": order " << k << " at " << pts[i] << " in "
                                                            << xg::dtype_name(dtype) << " is " << r[k][i]);
        }
    }
    auto at = [](const std::function<Tensor(const Tensor&)>& act, double x, xg::Dtype d) {
        return values_and_derivatives(act, {x}, d);
    };
    for (auto d : {xg::f32, xg::f64}) {
        BOOST_TEST(at([](const Tensor& x) { return xg::softplus(x); }, 1e4, d)[0][0] == 1e4);
        BOOST_TEST(at([](const Tensor& x) { return xg::log_sigmoid(x); }, -1e4, d)[0][0] == -1e4);
        BOOST_TEST(at([](const Tensor& x) { return xg::log_sigmoid(x); }, -1e4, d)[1][0] == 1.0);
        BOOST_TEST(at([](const Tensor& x) { return xg::sigmoid(x); }, -1e4, d)[1][0] == 0.0);
        const double g = at([](const Tensor& x) { return xg::gelu(x); }, -1e4, d)[0][0];
        BOOST_TEST(g == 0.0);
        BOOST_TEST(std::signbit(g));  // gelu(-1e4) = -0
        BOOST_TEST(at([](const Tensor& x) { return xg::gelu(x, "tanh"); }, -1e4, d)[0][0] == 0.0);
        BOOST_TEST(at([](const Tensor& x) { return xg::mish(x); }, 1e4, d)[0][0] == 1e4);
        BOOST_TEST(at([](const Tensor& x) { return xg::silu(x); }, -1e4, d)[1][0] == 0.0);
    }
    // Softmax family at logits of +-1e4.
    auto z = xg::tensor({1e4, -1e4, 0.0, 1e4}, {1, 4}, xg::f32);
    const auto p = xg::softmax(z).to_vector<double>();
    BOOST_TEST(p[0] == 0.5);
    BOOST_TEST(p[1] == 0.0);
    const auto lp = xg::log_softmax(z).to_vector<double>();
    BOOST_TEST(close(lp[1], -2e4 - std::log(2.0), 1e-6));
    BOOST_TEST(std::isfinite(lp[2]));
}

BOOST_AUTO_TEST_CASE(hand_written_derivatives_agree_with_the_automatic_ones) {
    // Duals of each built-in's scalar f versus its hand-written backward, on a grid with the kinks.
    std::vector<double> pts;
    for (int i = -120; i <= 120; ++i) pts.push_back(i / 10.0);
    for (const auto& name : xg::activation_names()) {
        const auto info = xg::activation_info(name);
        if (!info.elementwise || !info.automatic_derivative || name == "step_sigmoid") continue;
        const auto r = values_and_derivatives(info.fn, pts, xg::f64);
        const auto a = info.automatic_derivative(xg::tensor(pts, {-1}, xg::f64), 1).to_vector<double>();
        for (std::size_t i = 0; i < pts.size(); ++i)
            BOOST_TEST(close(r[1][i], a[i], 1e-12, 1e-14),
                       name << " at " << pts[i] << ": backward " << r[1][i] << ", automatic " << a[i]);
    }
}

BOOST_AUTO_TEST_CASE(third_derivative_through_the_chain) {
    // sigmoid''' = s(1-s)(1 - 6s + 6s^2), through sigmoid_backward, _backward2 and _backward3.
    auto x = xg::tensor({-1.5, 0.2, 2.0}, {3}, xg::f64).requires_grad_();
    const Tensor d1 = xg::grad({xg::sum(xg::sigmoid(x))}, {x}, {}, true, true)[0];
    const Tensor d2 = xg::grad({xg::sum(d1)}, {x}, {}, true, true)[0];
    const Tensor d3 = xg::grad({xg::sum(d2)}, {x})[0];
    const auto v = d3.to_vector<double>();
    const std::vector<double> xs = {-1.5, 0.2, 2.0};
    for (std::size_t i = 0; i < 3; ++i) {
        const double s = sig(xs[i]);
        BOOST_TEST(close(v[i], s * (1 - s) * (1 - 6 * s + 6 * s * s)));
    }
    BOOST_TEST(d1.grad_fn_name() == "sigmoid_backward");
    BOOST_TEST(xg::to_dot(d2).find("sigmoid_backward2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(forward_saves_the_output_where_the_derivative_needs_only_it) {
    // sigmoid saves y: x may change in place after forward. gelu saves x: the change is detected.
    auto x = xg::tensor({0.5, -1.0, 2.0}, {3}, xg::f64).requires_grad_();
    const Tensor ys = xg::sigmoid(x);
    const Tensor yg = xg::gelu(x);
    {
        xg::NoGradGuard ng;
        x.add_(xg::tensor({1.0, 1.0, 1.0}, {3}, xg::f64));
    }
    const Tensor g = xg::grad({xg::sum(ys)}, {x})[0];
    const auto gv = g.to_vector<double>();
    BOOST_TEST(close(gv[0], sig(0.5) * (1 - sig(0.5))));
    BOOST_CHECK_EXCEPTION(xg::sum(yg).backward(), xg::GraphError, [](const xg::GraphError& e) {
        return std::string(e.what()).find("gelu") != std::string::npos;
    });
}

// gelu (both forms) writes f'(x) in the forward pass and, when backward builds no graph,
// multiplies the gradient by it. That path must agree with the derivative op that a create_graph
// backward records (to rounding, absolute where f' crosses zero: the compiler may contract a
// multiply-add in one context and not in the other), and both must match the closed form of gelu'.
BOOST_AUTO_TEST_CASE(saved_derivative_backward_equals_the_recorded_derivative_op) {
    const std::vector<std::function<Tensor(const Tensor&)>> acts = {
        [](const Tensor& x) { return xg::gelu(x); },
        [](const Tensor& x) { return xg::gelu(x, "tanh"); },
    };
    for (const xg::Dtype dtype : {xg::f32, xg::f64}) {
        for (const std::int64_t n : {1, 7, 16, 17, 70000}) {
            std::vector<double> xv(static_cast<std::size_t>(n)), wv(xv.size());
            for (std::int64_t i = 0; i < n; ++i) {
                xv[i] = std::sin(0.37 * static_cast<double>(i) + 0.1) * 6;
                wv[i] = 0.5 + 0.125 * static_cast<double>(i % 9);
            }
            const Tensor w = xg::tensor(wv, {n}, dtype);
            for (std::size_t a = 0; a < acts.size(); ++a) {
                for (const bool dense : {false, true}) {
                    auto x = xg::tensor(xv, {n}, dtype).requires_grad_();
                    auto loss = [&] { return dense ? xg::sum(acts[a](x) * w) : xg::sum(acts[a](x)); };
                    const Tensor fast = xg::grad({loss()}, {x})[0];
                    const Tensor recorded = xg::grad({loss()}, {x}, {}, false, true)[0];
                    BOOST_TEST(recorded.requires_grad());
                    const auto fv = fast.to_vector<double>(), rv = recorded.to_vector<double>();
                    const double eps = dtype == xg::f32 ? 0x1p-23 : 0x1p-52;
                    std::int64_t differ = 0;
                    for (std::int64_t i = 0; i < n; ++i)
                        differ += !(std::abs(fv[i] - rv[i]) <= 8 * eps * (1 + std::abs(rv[i])));
                    BOOST_TEST(differ == 0, "activation " << a << " dtype " << xg::dtype_name(dtype) << " n " << n
                                                          << " dense " << dense << ": " << differ << " differ");
                    if (a == 0) {
                        double worst = 0;
                        for (std::int64_t i = 0; i < n; ++i) {
                            const double t = xv[i];
                            const double d = 0.5 * std::erfc(-t / std::numbers::sqrt2) +
                                             t * std::exp(-t * t / 2) * std::numbers::inv_sqrtpi / std::numbers::sqrt2;
                            worst = std::max(worst, std::abs(fv[i] - (dense ? wv[i] : 1.0) * d));
                        }
                        BOOST_TEST(worst < (dtype == xg::f32 ? 2e-6 : 1e-14));
                    }
                }
            }
        }
    }
}

// relu keeps one bit per element (y > 0) for backward: checked against the closed form over sizes
// around the 64-element words and the 16- and 8-lane vectors, in both dtypes, with a uniform
// gradient (that of a sum) and a dense one; x and y may change in place after the forward.
BOOST_AUTO_TEST_CASE(relu_backward_from_its_bit_mask) {
    for (const xg::Dtype dtype : {xg::f32, xg::f64}) {
        for (const std::int64_t n : {1, 7, 15, 16, 63, 64, 65, 127, 200, 70000}) {
            std::vector<double> xv(static_cast<std::size_t>(n)), gv(xv.size());
            for (std::int64_t i = 0; i < n; ++i) {
                xv[i] = (i % 5 == 0) ? 0.0 : std::sin(0.7 * static_cast<double>(i) + 0.3) * 3;
                gv[i] = 1.0 + 0.25 * static_cast<double>(i % 7);
            }
            if (n > 3) xv[3] = -0.0;
            auto x = xg::tensor(xv, {n}, dtype).requires_grad_();
            const Tensor y = xg::relu(x);
            BOOST_TEST(y.grad_fn_name() == "relu");
            const auto yv = y.to_vector<double>();
            for (std::int64_t i = 0; i < n; ++i) {
                const double xi = dtype == xg::f32 ? static_cast<double>(static_cast<float>(xv[i])) : xv[i];
                BOOST_TEST(yv[i] == (xi > 0 ? xi : 0.0));
            }
            {
                xg::NoGradGuard ng;  // the mask, not x or y, decides the backward
                x.add_(xg::full({n}, 5.0, dtype));
            }
            const Tensor g_sum = xg::grad({xg::sum(y)}, {x}, {}, /*retain_graph=*/true)[0];
            const Tensor g_dense = xg::grad({y}, {x}, {xg::tensor(gv, {n}, dtype)})[0];
            BOOST_TEST(g_sum.dtype() == dtype);
            const auto s = g_sum.to_vector<double>(), d = g_dense.to_vector<double>();
            for (std::int64_t i = 0; i < n; ++i) {
                BOOST_TEST(s[i] == (xv[i] > 0 ? 1.0 : 0.0));
                BOOST_TEST(d[i] == (xv[i] > 0 ? gv[i] : 0.0));
            }
        }
    }
    // A NaN input stays NaN with derivative 0; a NaN gradient gives 0 where relu' = 0 (PyTorch's
    // threshold_backward selects).
    auto x = xg::tensor({std::nan(""), -1.0, 2.0}, {3}, xg::f64).requires_grad_();
    const Tensor y = xg::relu(x);
    BOOST_TEST(std::isnan(y.to_vector<double>()[0]));
    const auto g =
        xg::grad({y}, {x}, {xg::tensor({std::nan(""), std::nan(""), 3.0}, {3}, xg::f64)})[0].to_vector<double>();
    BOOST_TEST(g[0] == 0.0);
    BOOST_TEST(g[1] == 0.0);
    BOOST_TEST(g[2] == 3.0);
    // Double backward: relu_backward is linear in its gradient, with the same mask.
    auto x2 = xg::tensor({-1.0, 0.5, 2.0}, {3}, xg::f64).requires_grad_();
    auto h = xg::tensor({2.0, 3.0, 4.0}, {3}, xg::f64).requires_grad_();
    const Tensor gx = xg::grad({xg::relu(x2)}, {x2}, {h}, /*retain_graph=*/true, /*create_graph=*/true)[0];
    BOOST_TEST(gx.grad_fn_name() == "relu_backward");
    const auto gh = xg::grad({xg::sum(gx * xg::tensor({1.0, 10.0, 100.0}, {3}, xg::f64))}, {h})[0].to_vector<double>();
    BOOST_TEST(gh == std::vector<double>({0.0, 10.0, 100.0}), boost::test_tools::per_element());
}

// gelu's float32 kernels (one exp for Phi and phi) against the float64 closed form: gelu within
// 4 ulp of its value and gelu' within 4 ulp of Phi + |x phi| (the size of its two terms; gelu'
// crosses 0 near -0.75), where the values are normal floats (> 1e-30). xsimd's erfc and exp, used
// before, were off by up to 127 and 33 ulp.
BOOST_AUTO_TEST_CASE(gelu_float32_within_4_ulp_of_the_closed_form) {
    std::vector<double> xv;
    for (int i = -14000; i <= 14000; ++i) xv.push_back(i * 1e-3 + 1.7e-5);
    auto x = xg::tensor(xv, {static_cast<std::int64_t>(xv.size())}, xg::f32).requires_grad_();
    const Tensor y = xg::gelu(x);
    const auto yv = y.to_vector<double>();
    const auto dv = xg::grad({xg::sum(y)}, {x})[0].to_vector<double>();
    const auto xf = x.to_vector<double>();  // the float32 inputs, exactly
    const double ulp = std::ldexp(1.0, -23);
    double worst_f = 0, worst_d = 0;
    for (std::size_t i = 0; i < xf.size(); ++i) {
        const double v = xf[i], cdf = 0.5 * std::erfc(-v / std::sqrt(2.0));
        const double pdf = std::exp(-v * v / 2) / std::sqrt(2 * std::numbers::pi);
        if (std::abs(v * cdf) > 1e-30)
            worst_f = std::max(worst_f, std::abs(yv[i] - v * cdf) / (std::abs(v * cdf) * ulp));
        const double size = cdf + std::abs(v * pdf);
        if (size > 1e-30) worst_d = std::max(worst_d, std::abs(dv[i] - (cdf + v * pdf)) / (size * ulp));
    }
    BOOST_TEST(worst_f <= 4.0);
    BOOST_TEST(worst_d <= 4.0);
}

BOOST_AUTO_TEST_CASE(prelu_weight_gradient_is_summed_per_channel) {
    auto x = xg::tensor({-1.0, 2.0, -3.0, 4.0, -5.0, 6.0, 0.0, -2.0}, {2, 2, 2}, xg::f64).requires_grad_();
    auto w = xg::tensor({0.1, 0.2}, {2}, xg::f64).requires_grad_();
    const Tensor y = xg::prelu(x, w);
    const std::vector<double> expected = {-0.1, 2.0, -0.6, 4.0, -0.5, 6.0, 0.0, -0.4};
    const auto yv = y.to_vector<double>();
    for (std::size_t i = 0; i < expected.size(); ++i) BOOST_TEST(close(yv[i], expected[i]));
    xg::sum(y * 2.0).backward();
    // d/dw_c = sum over x <= 0 in channel c of 2 x: channel 0 = {-1, 2, -5, 6}, channel 1 = {-3, 4, 0, -2}.
    BOOST_TEST(w.grad().to_vector<double>() == (std::vector<double>{-12.0, -10.0}), boost::test_tools::per_element());
    BOOST_TEST(x.grad().to_vector<double>() == (std::vector<double>{0.2, 2.0, 0.4, 2.0, 0.2, 2.0, 0.4, 0.4}),
               boost::test_tools::per_element());
    BOOST_CHECK_THROW(xg::prelu(x, xg::tensor({0.1, 0.2, 0.3}, {3}, xg::f64)), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(rrelu_draws_slopes_in_training_and_uses_the_mean_in_eval) {
    xg::manual_seed(3);
    auto x = xg::tensor(std::vector<double>(64, -2.0), {64}, xg::f64).requires_grad_();
    const Tensor y = xg::rrelu(x, 0.1, 0.3, true);
    xg::sum(y).backward();
    const auto yv = y.to_vector<double>(), gv = x.grad().to_vector<double>();
    double lo = 1, hi = 0;
    for (std::size_t i = 0; i < yv.size(); ++i) {
        BOOST_TEST(close(gv[i], yv[i] / -2.0));  // the gradient is the drawn slope
        lo = std::min(lo, gv[i]), hi = std::max(hi, gv[i]);
    }
    BOOST_TEST(lo >= 0.1);
    BOOST_TEST(hi <= 0.3);
    BOOST_TEST(hi - lo > 0.1);  // slopes really differ
    xg::manual_seed(3);
    BOOST_TEST(xg::rrelu(x, 0.1, 0.3, true).to_vector<double>() == yv, boost::test_tools::per_element());
    BOOST_TEST(close(xg::rrelu(x, 0.1, 0.3, false).to_vector<double>()[0], -0.4));
}

BOOST_AUTO_TEST_CASE(step_surrogate_gradients) {
    auto x = xg::tensor({-1.0, 0.0, 0.5, 2.0}, {4}, xg::f64).requires_grad_();
    BOOST_TEST(xg::step(x).to_vector<double>() == (std::vector<double>{0, 1, 1, 1}), boost::test_tools::per_element());
    auto grad_of = [&](const xg::StepOptions& o) {
        return xg::grad({xg::sum(xg::step(x, o))}, {x})[0].to_vector<double>();
    };
    BOOST_TEST(grad_of({}) == (std::vector<double>{0, 0, 0, 0}), boost::test_tools::per_element());
    xg::StepOptions ste;
    ste.surrogate = xg::StepSurrogate::straight_through;
    BOOST_TEST(grad_of(ste) == (std::vector<double>{1, 1, 1, 1}), boost::test_tools::per_element());
    xg::StepOptions sg;
    sg.surrogate = xg::StepSurrogate::sigmoid;
    sg.slope = 4.0;
    sg.threshold = 0.5;
    const auto g = grad_of(sg);
    const std::vector<double> xs = {-1.0, 0.0, 0.5, 2.0};
    for (std::size_t i = 0; i < 4; ++i) {
        const double s = sig(4.0 * (xs[i] - 0.5));
        BOOST_TEST(close(g[i], 4.0 * s * (1 - s)));
    }
    BOOST_TEST(xg::step(x, sg).to_vector<double>() == (std::vector<double>{0, 0, 1, 1}),
               boost::test_tools::per_element());
    BOOST_TEST(std::isnan(xg::step(xg::tensor({NAN}, {1}, xg::f64)).item<double>()));
}

BOOST_AUTO_TEST_CASE(softmax_family_values) {
    auto x = xg::tensor({1.0, 2.0, 3.0, -1.0, 0.0, 4.0}, {2, 3}, xg::f64);
    const auto p = xg::softmax(x, 1).to_vector<double>();
    const double z0 = std::exp(1) + std::exp(2) + std::exp(3);
    BOOST_TEST(close(p[0], std::exp(1) / z0));
    BOOST_TEST(close(p[2], std::exp(3) / z0));
    const auto q = xg::softmax(x, 0).to_vector<double>();
    BOOST_TEST(close(q[0], std::exp(1) / (std::exp(1) + std::exp(-1))));
    const auto lp = xg::log_softmax(x, 1).to_vector<double>();
    BOOST_TEST(close(lp[4], 0.0 - std::log(std::exp(-1) + 1 + std::exp(4))));
    const auto m = xg::softmin(x, 1).to_vector<double>();
    BOOST_TEST(close(m[0], std::exp(-1) / (std::exp(-1) + std::exp(-2) + std::exp(-3))));
    BOOST_TEST(xg::softmax(x).grad_fn_name().empty());  // no grad: a plain tensor
    auto xr = x.detach().requires_grad_();
    BOOST_TEST(xg::softmin(xr).grad_fn_name() == "softmin");
    // A long row (vectorised path) and many short rows along a middle axis agree with the composite.
    xg::manual_seed(5);
    auto big = xg::randn({3, 37, 21}, xg::f64);
    for (std::int64_t axis : {0, 1, 2}) {
        const auto a = xg::softmax(big, axis).to_vector<double>();
        const auto b = xg::exp(big - xg::logsumexp(big, {axis}, true)).to_vector<double>();
        for (std::size_t i = 0; i < a.size(); ++i) BOOST_TEST(close(a[i], b[i], 1e-12));
    }
}

BOOST_AUTO_TEST_CASE(glu_halves) {
    auto x = xg::tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}, {2, 4}, xg::f64);
    const auto y = xg::glu(x).to_vector<double>();
    BOOST_TEST(close(y[0], 1.0 * sig(3.0)));
    BOOST_TEST(close(y[3], 6.0 * sig(8.0)));
    const auto y0 = xg::glu(x, 0).to_vector<double>();
    BOOST_TEST(close(y0[1], 2.0 * sig(6.0)));
    BOOST_CHECK_THROW(xg::glu(xg::zeros({2, 3}, xg::f64)), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(errors_name_the_op) {
    auto ints = xg::tensor_i64({1, 2, 3});
    BOOST_CHECK_EXCEPTION(xg::gelu(ints), xg::DtypeError,
                          [](const xg::DtypeError& e) { return std::string(e.what()).find("gelu") == 0; });
    BOOST_CHECK_EXCEPTION(xg::hardtanh(xg::zeros({2}), 1.0, -1.0), xg::ValueError,
                          [](const xg::ValueError& e) { return std::string(e.what()).find("hardtanh") == 0; });
    BOOST_CHECK_THROW(xg::gelu(xg::zeros({2}), "fast"), xg::ValueError);
    BOOST_CHECK_THROW(xg::celu(xg::zeros({2}), 0.0), xg::ValueError);
    BOOST_CHECK_THROW(xg::softshrink(xg::zeros({2}), -1.0), xg::ValueError);
    BOOST_CHECK_EXCEPTION(xg::sigmoid_backward(xg::zeros({2}), xg::zeros({3})), xg::ShapeError,
                          [](const xg::ShapeError& e) { return std::string(e.what()).find("sigmoid_backward") == 0; });
}

BOOST_AUTO_TEST_CASE(op_names_in_the_graph) {
    auto x = xg::tensor({0.5, -0.5}, {2}, xg::f64).requires_grad_();
    BOOST_TEST(xg::relu6(x).grad_fn_name() == "relu6");
    BOOST_TEST(xg::gelu(x, "tanh").grad_fn_name() == "gelu_tanh");
    BOOST_TEST(xg::hardswish(x).grad_fn_name() == "hardswish");
    const Tensor g = xg::grad({xg::sum(xg::mish(x))}, {x}, {}, true, true)[0];
    BOOST_TEST(g.grad_fn_name() == "mish_backward");
    BOOST_TEST(xg::to_dot(g).find("mish_backward") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(every_builtin_is_registered) {
    for (const char* name :
         {"step",       "heaviside",   "sigmoid",    "tanh",       "hardtanh",   "relu",      "relu6",
          "leaky_relu", "prelu",       "rrelu",      "elu",        "selu",       "celu",      "gelu",
          "gelu_tanh",  "silu",        "swish",      "mish",       "softplus",   "softsign",  "hardsigmoid",
          "hardswish",  "log_sigmoid", "tanhshrink", "softshrink", "hardshrink", "threshold", "glu",
          "softmax",    "log_softmax", "softmin"}) {
        BOOST_TEST(xg::has_activation(name), name);
    }
    auto x = xg::tensor({-1.0, 1.0}, {2}, xg::f64);
    BOOST_TEST(close(xg::get_activation("silu")(x).to_vector<double>()[1], sig(1.0)));
    BOOST_CHECK_THROW(xg::get_activation("no_such_activation"), xg::ValueError);
}

// An activation sums its output while writing it (Array::remember_sum), so that a loss that sums
// the output reads nothing more. The remembered sum must be the one reduce_sum computes from the
// elements, bit for bit, whatever the size (chunk boundaries, batch tails, relu's partial mask
// words), dtype and thread count; and a write to the output must make sum() read it again.
BOOST_AUTO_TEST_CASE(remembered_output_sum_is_the_sum_of_the_elements) {
    const auto user = xg::activation("softsign_user", [](auto v) { return v / (1 + xg::abs(v)); });
    const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> acts = {
        {"sigmoid", [](const Tensor& x) { return xg::sigmoid(x); }},
        {"tanh", [](const Tensor& x) { return xg::tanh(x); }},
        {"relu", [](const Tensor& x) { return xg::relu(x); }},
        {"relu_no_grad", [](const Tensor& x) { return xg::relu(x.detach()); }},
        {"gelu", [](const Tensor& x) { return xg::gelu(x); }},
        {"silu", [](const Tensor& x) { return xg::silu(x); }},
        {"elu", [](const Tensor& x) { return xg::elu(x); }},
        {"user", [user](const Tensor& x) { return user(x); }}};
    const int before = xg::get_num_threads();
    xg::manual_seed(21);
    for (const auto dtype : {xg::f32, xg::f64}) {
        for (const std::int64_t n : {1, 45, 16384, 16385, 3 * 16384 + 45, 100003}) {
            const Tensor x = (xg::randn({n}, dtype) * 3.0).requires_grad_();
            for (const auto& [name, act] : acts) {
                BOOST_TEST_CONTEXT(name << " " << xg::dtype_name(dtype) << " n=" << n) {
                    std::vector<double> sums;
                    for (const int threads : {1, 2}) {
                        xg::set_num_threads(threads);
                        const Tensor y = act(x);
                        double known = 0;
                        BOOST_TEST(y.array().known_sum(known));
                        const Tensor copy(y.array().clone());  // a plain copy: sum() reads its elements
                        BOOST_TEST(!copy.array().known_sum(known));
                        const double from_elements = xg::sum(copy).item<double>();
                        BOOST_TEST(known == from_elements);  // exact
                        BOOST_TEST(xg::sum(y).item<double>() == from_elements);
                        BOOST_TEST(xg::mean(y).item<double>() == xg::mean(copy).item<double>());
                        sums.push_back(known);
                    }
                    BOOST_TEST(sums[0] == sums[1]);
                }
            }
        }
    }
    xg::set_num_threads(before);
    // A write through the xgrad API forgets the remembered sum.
    const Tensor x = xg::randn({40000}, xg::f32);
    Tensor y = xg::sigmoid(x);
    const double first = xg::sum(y).item<double>();
    y.mul_(2.0);
    double known = 0;
    BOOST_TEST(!y.array().known_sum(known));
    BOOST_TEST(xg::sum(y).item<double>() == xg::sum(Tensor(y.array().clone())).item<double>());
    BOOST_TEST(xg::sum(y).item<double>() == 2 * first);  // doubling every element is exact
}

BOOST_AUTO_TEST_CASE(results_do_not_depend_on_the_thread_count) {
    xg::manual_seed(9);
    auto x = xg::randn({300000}, xg::f32).requires_grad_();
    auto m = xg::randn({600, 500}, xg::f32);
    auto run = [&](int threads) {
        xg::set_num_threads(threads);
        const Tensor y = xg::gelu(x);
        const Tensor g = xg::grad({xg::sum(y * y)}, {x})[0];
        auto r = g.to_vector<float>();
        auto s = xg::log_softmax(m, 0).to_vector<float>();
        r.insert(r.end(), s.begin(), s.end());
        return r;
    };
    const int before = xg::get_num_threads();
    const auto one = run(1), two = run(2);
    xg::set_num_threads(before);
    BOOST_TEST(one == two);
}

BOOST_AUTO_TEST_SUITE_END()

// xg::linear (fused x W^T + b, optionally with an activation): values against matmul + add (+ the
// activation op), shapes, errors, gradcheck and gradgradcheck in float64 for every fusable activation.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

#include "fused_compare.hpp"

using xg::Tensor;
using V = std::vector<Tensor>;

using xgt::check_close;
using xgt::max_ulp;

namespace {
Tensor rg(const Tensor& t) { return Tensor(t).requires_grad_(); }

// The unfused reference: activation op of that name after matmul + add.
Tensor reference(const Tensor& x, const Tensor& w, const Tensor& b, const std::string& act) {
    Tensor y = xg::matmul(x, xg::transpose(w, 0, 1));
    if (b.defined()) y = y + b;
    return act.empty() ? y : xg::get_activation(act)(y);
}

const char* kActs[] = {"", "relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"};
}  // namespace

BOOST_AUTO_TEST_SUITE(ops_linear)

BOOST_AUTO_TEST_CASE(values_by_hand) {
    auto x = xg::tensor({1, 2, -1, 0.5}, {2, 2}, xg::f64);
    auto w = xg::tensor({1, 0, 2, -1, 0, 3}, {3, 2}, xg::f64);
    auto b = xg::tensor({0.5, -0.5, 1}, {3}, xg::f64);
    // rows: [1, 2] -> [1, 0, 6] + b; [-1, 0.5] -> [-1, -2.5, 1.5] + b
    const std::vector<double> want{1.5, -0.5, 7, -0.5, -3, 2.5};
    BOOST_TEST(xg::linear(x, w, b).to_vector<double>() == want, boost::test_tools::per_element());
    const std::vector<double> relu_want{1.5, 0, 7, 0, 0, 2.5};
    BOOST_TEST(xg::linear(x, w, b, "relu").to_vector<double>() == relu_want, boost::test_tools::per_element());
    const std::vector<double> nobias{1, 0, 6, -1, -2.5, 1.5};
    BOOST_TEST(xg::linear(x, w).to_vector<double>() == nobias, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(input_ranks) {
    xg::manual_seed(3);
    auto w = xg::randn({4, 3}, xg::f64), b = xg::randn({4}, xg::f64);
    auto x1 = xg::randn({3}, xg::f64);
    auto y1 = xg::linear(x1, w, b);
    BOOST_TEST((y1.shape() == xg::Shape{4}));
    check_close(y1, xg::reshape(reference(xg::reshape(x1, {1, 3}), w, b, ""), {4}), 1e-14);
    auto x3 = xg::randn({2, 5, 3}, xg::f64);
    auto y3 = xg::linear(x3, w, b, "tanh");
    BOOST_TEST((y3.shape() == xg::Shape{2, 5, 4}));
    check_close(y3, reference(x3, w, b, "tanh"), 1e-14);
    auto x0 = xg::zeros({0, 3}, xg::f64);
    BOOST_TEST((xg::linear(x0, w, b).shape() == xg::Shape{0, 4}));
    // in_features 0: the bias alone.
    auto e = xg::linear(xg::zeros({2, 0}, xg::f64), xg::zeros({4, 0}, xg::f64), b);
    check_close(e, xg::reshape(xg::concat({b, b}, 0), {2, 4}), 0);
}

BOOST_AUTO_TEST_CASE(errors_name_op_and_shapes) {
    auto w = xg::randn({4, 3});
    auto check = [](auto f, const std::string& part) {
        try {
            f();
            BOOST_ERROR("no exception");
        } catch (const xg::Error& e) {
            const std::string m = e.what();
            BOOST_TEST(m.find("linear") != std::string::npos, m);
            BOOST_TEST(m.find(part) != std::string::npos, m);
        }
    };
    check([&] { xg::linear(xg::randn({2, 5}), w); }, "[2,5]");
    BOOST_CHECK_THROW(xg::linear(xg::randn({2, 5}), w), xg::ShapeError);
    check([&] { xg::linear(xg::randn({2, 3}), w, xg::randn({3})); }, "bias [3]");
    BOOST_CHECK_THROW(xg::linear(xg::randn({2, 3}), xg::randn({4})), xg::ShapeError);
    BOOST_CHECK_THROW(xg::linear(xg::randn({2, 3}), w, Tensor(), "softmax"), xg::ValueError);
    BOOST_CHECK_THROW(xg::linear(xg::randint(0, 3, {2, 3}), xg::randint(0, 3, {4, 3})), xg::DtypeError);
    BOOST_TEST(xg::linear_fuses("relu"));
    BOOST_TEST(!xg::linear_fuses("mish"));
}

BOOST_AUTO_TEST_CASE(float32_matches_unfused_within_one_ulp) {
    xg::manual_seed(5);
    // Big enough that the GEMM is cut into tiles (m n k >= 2^19).
    auto x = xg::randn({300, 70}), w = xg::randn({260, 70}) * 0.2, b = xg::randn({260});
    for (const char* act : kActs) {
        BOOST_TEST_CONTEXT("activation '" << act << "'") {
            BOOST_TEST(max_ulp(xg::linear(x, w, b, act), reference(x, w, b, act)) <= 1);
        }
    }
}

BOOST_AUTO_TEST_CASE(float32_gradients_match_unfused) {
    xg::manual_seed(6);
    auto x = rg(xg::randn({40, 30})), w = rg(xg::randn({20, 30}) * 0.3), b = rg(xg::randn({20}));
    auto g = xg::randn({40, 20});
    for (const char* act : kActs) {
        BOOST_TEST_CONTEXT("activation '" << act << "'") {
            auto ref = xg::grad({xg::sum(reference(x, w, b, act) * g)}, {x, w, b});
            auto got = xg::grad({xg::sum(xg::linear(x, w, b, act) * g)}, {x, w, b});
            for (int i = 0; i < 3; ++i) check_close(got[i], ref[i], 2e-5);
        }
    }
}

BOOST_AUTO_TEST_CASE(gradcheck_and_gradgradcheck_float64) {
    xg::manual_seed(7);
    auto x = rg(xg::randn({3, 4}, xg::f64)), w = rg(xg::randn({5, 4}, xg::f64)), b = rg(xg::randn({5}, xg::f64));
    for (const char* act : kActs) {
        const std::string a = act;
        BOOST_TEST_CONTEXT("activation '" << a << "'") {
            auto f = [a](const V& in) { return xg::linear(in[0], in[1], in[2], a); };
            XG_CHECK_GRAD(f, {x, w, b});
            XG_CHECK_GRADGRAD(f, {x, w, b});
            auto nb = [a](const V& in) { return xg::linear(in[0], in[1], Tensor(), a); };
            XG_CHECK_GRAD(nb, {x, w});
            XG_CHECK_GRADGRAD(nb, {x, w});
        }
    }
    // 1-D and 3-D inputs.
    auto x1 = rg(xg::randn({4}, xg::f64)), x3 = rg(xg::randn({2, 2, 4}, xg::f64));
    XG_CHECK_GRADGRAD([](const V& in) { return xg::linear(in[0], in[1], in[2], "silu"); }, {x1, w, b});
    XG_CHECK_GRADGRAD([](const V& in) { return xg::linear(in[0], in[1], in[2], "sigmoid"); }, {x3, w, b});
}

BOOST_AUTO_TEST_CASE(only_needed_gradients) {
    xg::manual_seed(8);
    auto x = xg::randn({3, 4}, xg::f64), w = rg(xg::randn({2, 4}, xg::f64)), b = xg::randn({2}, xg::f64);
    xg::sum(xg::linear(x, w, b, "relu")).backward();
    BOOST_TEST(w.grad().defined());
    auto ref = xg::grad({xg::sum(reference(x, w, b, "relu"))}, {w});
    check_close(w.grad(), ref[0], 1e-14);
    BOOST_TEST(xg::linear(x, w, b, "relu").grad_fn_name() == "linear_act");
    BOOST_TEST(xg::linear(x, w, b).grad_fn_name() == "linear");
}

BOOST_AUTO_TEST_SUITE_END()

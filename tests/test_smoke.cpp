#include <boost/test/unit_test.hpp>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

BOOST_AUTO_TEST_SUITE(smoke)

BOOST_AUTO_TEST_CASE(product_rule_by_hand) {
    auto x = xg::tensor({2.0}, {}, xg::f64).requires_grad_();
    auto y = x * x * 3.0 + x;  // dy/dx = 6x + 1 = 13
    y.backward();
    BOOST_TEST(x.grad().item<double>() == 13.0);
}

BOOST_AUTO_TEST_CASE(gradcheck_passes_on_composite_and_fails_on_wrong_rule) {
    xg::manual_seed(1);
    auto x = xg::randn({3, 4}, xg::f64).requires_grad_();
    auto w = xg::randn({4, 2}, xg::f64).requires_grad_();
    auto fn = [](const std::vector<xg::Tensor>& in) { return xg::tanh(xg::matmul(in[0], in[1])) * xg::sigmoid(in[0].to(xg::f64)).size(0); };
    (void)fn;
    auto f = [](const std::vector<xg::Tensor>& in) { return xg::sum(xg::sigmoid(xg::matmul(in[0], in[1]))); };
    XG_CHECK_GRAD(f, {x, w});
    XG_CHECK_GRADGRAD(f, {x, w});
    // A rule that is wrong by a factor 2 must fail and name the worst element.
    auto wrong = [](const std::vector<xg::Tensor>& in) {
        return xg::make_result("bad_square", xg::square(in[0].detach()).array(), {in[0]},
                               [x = in[0]](const xg::Tensor& g, const xg::Tensor&) {
                                   return std::vector<xg::Tensor>{g * x * 4.0};
                               });
    };
    auto r = xg::gradcheck(wrong, {x});
    BOOST_TEST(!r);
    BOOST_TEST(r.report().find("worst element") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

#include <boost/test/unit_test.hpp>
#include <xgrad/xgrad.hpp>

BOOST_AUTO_TEST_SUITE(smoke)

BOOST_AUTO_TEST_CASE(product_rule_by_hand) {
    auto x = xg::tensor({2.0}, {}, xg::f64).requires_grad_();
    auto y = x * x * 3.0 + x;  // dy/dx = 6x + 1 = 13
    y.backward();
    BOOST_TEST(x.grad().item<double>() == 13.0);
}

BOOST_AUTO_TEST_SUITE_END()

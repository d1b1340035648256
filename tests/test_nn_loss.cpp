// Losses: values by hand, reductions, stability at extreme logits, gradcheck and gradgradcheck.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
using nn::Reduction;
using xg::Tensor;
using V = std::vector<Tensor>;

namespace {
void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
    BOOST_REQUIRE_EQUAL(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        BOOST_TEST(std::abs(a[i] - b[i]) <= tol, "at " << i << ": " << a[i] << " vs " << b[i]);
}
Tensor rg(const Tensor& t) { return Tensor(t).requires_grad_(); }
Tensor t64(std::initializer_list<double> v, xg::Shape s) { return xg::tensor(v, std::move(s), xg::f64); }
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_loss)

BOOST_AUTO_TEST_CASE(regression_losses_by_hand) {
    auto x = t64({1.0, -2.0, 3.0, 0.25}, {2, 2});
    auto y = t64({0.0, 0.0, 1.0, 0.0}, {2, 2});
    // d = 1, -2, 2, 0.25
    check_close(nn::mse_loss(x, y, Reduction::none).to_vector<double>(), {1, 4, 4, 0.0625}, 0);
    BOOST_TEST(nn::mse_loss(x, y).item<double>() == 9.0625 / 4);
    BOOST_TEST(nn::mse_loss(x, y, Reduction::sum).item<double>() == 9.0625);
    BOOST_TEST(nn::l1_loss(x, y).item<double>() == 5.25 / 4);
    // smooth_l1, beta 1: 0.5 d^2 for |d| < 1, |d| - 0.5 otherwise.
    check_close(nn::smooth_l1_loss(x, y, Reduction::none).to_vector<double>(), {0.5, 1.5, 1.5, 0.03125}, 0);
    // beta 2.5: everything inside: 0.5 d^2 / 2.5.
    check_close(nn::smooth_l1_loss(x, y, Reduction::none, 2.5).to_vector<double>(), {0.2, 0.8, 0.8, 0.0125}, 1e-15);
    check_close(nn::smooth_l1_loss(x, y, Reduction::none, 0.0).to_vector<double>(), {1, 2, 2, 0.25}, 0);
    // huber, delta 1.5: 0.5 d^2 for |d| <= 1.5, 1.5 (|d| - 0.75) otherwise.
    check_close(nn::huber_loss(x, y, Reduction::none, 1.5).to_vector<double>(), {0.5, 1.875, 1.875, 0.03125}, 0);
    BOOST_CHECK_THROW(nn::mse_loss(x, t64({1, 2}, {2})), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(regression_losses_gradcheck) {
    xg::manual_seed(1);
    // Random points are almost surely away from the kinks of l1 / smooth_l1 / huber.
    auto x = rg(xg::randn({3, 4}, xg::f64) * 2.0), y = rg(xg::randn({3, 4}, xg::f64));
    for (auto r : {Reduction::mean, Reduction::sum, Reduction::none}) {
        XG_CHECK_GRAD([r](const V& in) { return nn::mse_loss(in[0], in[1], r); }, {x, y});
        XG_CHECK_GRADGRAD([r](const V& in) { return nn::mse_loss(in[0], in[1], r); }, {x, y});
    }
    XG_CHECK_GRAD([](const V& in) { return nn::l1_loss(in[0], in[1]); }, {x, y});
    XG_CHECK_GRAD([](const V& in) { return nn::smooth_l1_loss(in[0], in[1], Reduction::sum, 0.7); }, {x, y});
    XG_CHECK_GRADGRAD([](const V& in) { return nn::smooth_l1_loss(in[0], in[1], Reduction::sum, 0.7); }, {x, y});
    XG_CHECK_GRAD([](const V& in) { return nn::huber_loss(in[0], in[1], Reduction::mean, 0.8); }, {x, y});
    XG_CHECK_GRADGRAD([](const V& in) { return nn::huber_loss(in[0], in[1], Reduction::mean, 0.8); }, {x, y});
}

BOOST_AUTO_TEST_CASE(cross_entropy_with_indices_by_hand) {
    auto logits = t64({1, 2, 3, 0, 0, 0}, {2, 3});
    auto target = xg::tensor_i64({2, 0});
    const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)), lse1 = std::log(3.0);
    const double l0 = lse0 - 3.0, l1 = lse1;
    check_close(nn::cross_entropy(logits, target, Reduction::none).to_vector<double>(), {l0, l1}, 1e-14);
    BOOST_TEST(std::abs(nn::cross_entropy(logits, target).item<double>() - (l0 + l1) / 2) < 1e-14);
    BOOST_TEST(std::abs(nn::cross_entropy(logits, target, Reduction::sum).item<double>() - (l0 + l1)) < 1e-14);
    // Label smoothing e: (1-e) nll + e/C sum_c -log p_c.
    const double e = 0.2;
    const double s0 = (1 - e) * l0 + e / 3 * ((lse0 - 1) + (lse0 - 2) + (lse0 - 3)),
                 s1 = (1 - e) * l1 + e / 3 * (3 * lse1);
    check_close(nn::cross_entropy(logits, target, Reduction::none, e).to_vector<double>(), {s0, s1}, 1e-14);
    // The same through nll_loss(log_softmax).
    check_close(nn::nll_loss(xg::log_softmax(logits, 1), target, Reduction::none).to_vector<double>(), {l0, l1}, 1e-14);
    // Gradient of the mean: (softmax - one_hot) / N.
    auto lg = rg(logits);
    nn::cross_entropy(lg, target).backward();
    const auto sm = xg::softmax(logits, 1).to_vector<double>();
    check_close(lg.grad().to_vector<double>(),
                {sm[0] / 2, sm[1] / 2, (sm[2] - 1) / 2, (sm[3] - 1) / 2, sm[4] / 2, sm[5] / 2}, 1e-15);
}

BOOST_AUTO_TEST_CASE(cross_entropy_with_probabilities_and_spatial_targets) {
    xg::manual_seed(2);
    auto logits = xg::randn({4, 5}, xg::f64);
    auto target = xg::tensor_i64({0, 4, 2, 2});
    auto onehot = xg::one_hot(target, 5, xg::f64);
    // Probabilities equal to the one-hot indices give the same loss, with or without smoothing.
    check_close(nn::cross_entropy(logits, onehot, Reduction::none).to_vector<double>(),
                nn::cross_entropy(logits, target, Reduction::none).to_vector<double>(), 1e-14);
    check_close(nn::cross_entropy(logits, onehot, Reduction::none, 0.3).to_vector<double>(),
                nn::cross_entropy(logits, target, Reduction::none, 0.3).to_vector<double>(), 1e-14);
    // Class axis 1 with extra positions: [N, C, L] against [N, L].
    auto l3 = xg::randn({2, 3, 4}, xg::f64);
    auto t3 = xg::tensor_i64({0, 1, 2, 0, 2, 2, 1, 0}, {2, 4});
    auto per = nn::cross_entropy(l3, t3, Reduction::none);
    BOOST_TEST((per.shape() == xg::Shape{2, 4}));
    auto moved = xg::reshape(xg::permute(l3, {0, 2, 1}), {8, 3});
    check_close(per.to_vector<double>(),
                nn::cross_entropy(moved, xg::reshape(t3, {8}), Reduction::none).to_vector<double>(), 1e-14);
    BOOST_CHECK_THROW(nn::cross_entropy(logits, xg::tensor_i64({0, 5, 1, 1})), xg::IndexError);
    BOOST_CHECK_THROW(nn::cross_entropy(logits, xg::tensor_i64({0, 1})), xg::ShapeError);
    BOOST_CHECK_THROW(nn::cross_entropy(logits, target, Reduction::mean, 1.5), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(cross_entropy_is_stable_at_huge_logits) {
    auto logits = rg(t64({1e4, -1e4, 0, -1e4, 1e4, 0}, {2, 3}));
    auto loss = nn::cross_entropy(logits, xg::tensor_i64({0, 0}), Reduction::none);
    check_close(loss.to_vector<double>(), {0.0, 2e4}, 1e-9);
    xg::sum(loss).backward();
    check_close(logits.grad().to_vector<double>(), {0, 0, 0, -1, 1, 0}, 1e-12);
}

BOOST_AUTO_TEST_CASE(cross_entropy_and_nll_gradcheck) {
    xg::manual_seed(3);
    auto logits = rg(xg::randn({3, 4}, xg::f64));
    auto target = xg::tensor_i64({3, 0, 1});
    auto probs = rg(xg::softmax(xg::randn({3, 4}, xg::f64), 1));
    for (double ls : {0.0, 0.1}) {
        XG_CHECK_GRAD([&](const V& in) { return nn::cross_entropy(in[0], target, Reduction::mean, ls); }, {logits});
        XG_CHECK_GRADGRAD([&](const V& in) { return nn::cross_entropy(in[0], target, Reduction::mean, ls); }, {logits});
        XG_CHECK_GRAD([&](const V& in) { return nn::cross_entropy(in[0], in[1], Reduction::none, ls); },
                      {logits, probs});
        XG_CHECK_GRADGRAD([&](const V& in) { return nn::cross_entropy(in[0], in[1], Reduction::sum, ls); },
                          {logits, probs});
    }
    XG_CHECK_GRAD([&](const V& in) { return nn::nll_loss(in[0], target, Reduction::sum); }, {logits});
}

BOOST_AUTO_TEST_CASE(binary_cross_entropy_by_hand_and_clamped) {
    auto p = t64({0.5, 0.9, 0.2, 0.0, 1.0}, {5});
    auto y = t64({1.0, 0.0, 0.0, 1.0, 1.0}, {5});
    check_close(nn::binary_cross_entropy(p, y, Reduction::none).to_vector<double>(),
                {-std::log(0.5), -std::log(0.1), -std::log(0.8), 100.0, 0.0}, 1e-12);
    // At p = 0 the clamped log passes no gradient: finite, no NaN.
    auto pg = rg(p);
    nn::binary_cross_entropy(pg, y, Reduction::sum).backward();
    for (double g : pg.grad().to_vector<double>()) BOOST_TEST(std::isfinite(g));
    BOOST_TEST(std::abs(pg.grad().to_vector<double>()[0] + 2.0) < 1e-12);  // -y/p
    xg::manual_seed(4);
    auto q = rg(xg::rand({2, 3}, xg::f64) * 0.8 + 0.1), t = rg(xg::rand({2, 3}, xg::f64));
    XG_CHECK_GRAD([](const V& in) { return nn::binary_cross_entropy(in[0], in[1]); }, {q, t});
    XG_CHECK_GRADGRAD([](const V& in) { return nn::binary_cross_entropy(in[0], in[1]); }, {q, t});
}

BOOST_AUTO_TEST_CASE(bce_with_logits_matches_and_is_stable) {
    xg::manual_seed(5);
    auto x = xg::randn({6}, xg::f64) * 3.0;
    auto y = xg::rand({6}, xg::f64);
    check_close(nn::binary_cross_entropy_with_logits(x, y, Reduction::none).to_vector<double>(),
                nn::binary_cross_entropy(xg::sigmoid(x), y, Reduction::none).to_vector<double>(), 1e-12);
    // Logits of +-1e4: finite losses and gradient sigmoid(x) - y.
    auto big = rg(t64({1e4, -1e4, 1e4, -1e4, 0.0}, {5}));
    auto ty = t64({0, 1, 1, 0, 1}, {5});
    auto loss = nn::binary_cross_entropy_with_logits(big, ty, Reduction::none);
    check_close(loss.to_vector<double>(), {1e4, 1e4, 0, 0, std::log(2.0)}, 1e-9);
    xg::sum(loss).backward();
    check_close(big.grad().to_vector<double>(), {1, -1, 0, 0, -0.5}, 1e-12);
    auto xr = rg(x), yr = rg(y);
    XG_CHECK_GRAD([](const V& in) { return nn::binary_cross_entropy_with_logits(in[0], in[1], Reduction::sum); },
                  {xr, yr});
    XG_CHECK_GRADGRAD([](const V& in) { return nn::binary_cross_entropy_with_logits(in[0], in[1]); }, {xr, yr});
}

BOOST_AUTO_TEST_SUITE_END()

// Layers: values by hand or by an independent formula, and gradcheck (plus gradgradcheck where cheap)
// in float64 with respect to the input and every parameter.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
using xg::Tensor;
using V = std::vector<Tensor>;

namespace {
void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
    BOOST_REQUIRE_EQUAL(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        BOOST_TEST(std::abs(a[i] - b[i]) <= tol, "at " << i << ": " << a[i] << " vs " << b[i]);
}
Tensor rg(const Tensor& t) { return Tensor(t).requires_grad_(); }
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_layers)

BOOST_AUTO_TEST_CASE(linear_values_and_gradcheck) {
    nn::Linear lin(3, 2, true, xg::f64);
    xg::NoGradGuard ng0;
    lin.weight.copy_(xg::tensor({1, 2, 3, -1, 0, 1}, {2, 3}, xg::f64));
    lin.bias.copy_(xg::tensor({0.5, -0.5}, {2}, xg::f64));
    auto y = lin(xg::tensor({1, 1, 1, 2, 0, -1}, {2, 3}, xg::f64));
    check_close(y.to_vector<double>(), {6.5, -0.5, -0.5, -3.5}, 0);
    // 1-d and 3-d inputs.
    check_close(lin(xg::tensor({1, 1, 1}, {3}, xg::f64)).to_vector<double>(), {6.5, -0.5}, 0);
    BOOST_TEST((lin(xg::zeros({4, 5, 3}, xg::f64)).shape() == xg::Shape{4, 5, 2}));
    BOOST_CHECK_THROW(lin(xg::zeros({2, 4}, xg::f64)), xg::ShapeError);
    xg::EnableGradGuard eg;
    xg::manual_seed(1);
    auto f = [&](const V& in) {
        lin.weight = in[1], lin.bias = in[2];
        return lin(in[0]);
    };
    auto x = rg(xg::randn({3, 3}, xg::f64));
    XG_CHECK_GRAD(f, {x, rg(xg::randn({2, 3}, xg::f64)), rg(xg::randn({2}, xg::f64))});
    XG_CHECK_GRADGRAD(f, {x, rg(xg::randn({2, 3}, xg::f64)), rg(xg::randn({2}, xg::f64))});
    nn::Linear nobias(3, 2, false);
    BOOST_TEST(nobias.parameters().size() == 1u);
}

BOOST_AUTO_TEST_CASE(linear_weight_gradient_at_training_sizes) {
    // Regression: at these sizes the GEMMs are split into row chunks; the weight gradient g^T x reads
    // the transposed operand by column blocks (its leading dimension must stay the full row count).
    xg::manual_seed(12);
    nn::Linear lin(784, 300);
    auto x = xg::randn({128, 784});
    auto g = xg::randn({128, 300});
    lin(x).backward(g);
    const auto got = lin.weight.grad().to_vector<double>();
    const auto want = xg::matmul(xg::transpose(g, 0, 1).to(xg::f64), x.to(xg::f64)).to_vector<double>();
    BOOST_REQUIRE_EQUAL(got.size(), want.size());
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i)
        worst = std::max(worst, std::abs(got[i] - want[i]) / (1 + std::abs(want[i])));
    BOOST_TEST(worst < 1e-4);
    check_close(lin.bias.grad().to_vector<double>(), xg::sum(g.to(xg::f64), {0}).to_vector<double>(), 1e-3);
}

BOOST_AUTO_TEST_CASE(sequential_and_activation_layers) {
    xg::manual_seed(2);
    auto l1 = std::make_shared<nn::Linear>(3, 4, true, xg::f64);
    auto l2 = std::make_shared<nn::Linear>(4, 2, true, xg::f64);
    nn::Sequential seq{l1, std::make_shared<nn::Activation>("tanh"), l2};
    BOOST_TEST(seq.size() == 3u);
    auto x = xg::randn({2, 3}, xg::f64);
    check_close(seq(x).to_vector<double>(), (*l2)(xg::tanh((*l1)(x))).to_vector<double>(), 0);
    auto f = [&](const V& in) {
        l1->weight = in[1];
        l2->weight = in[2];
        return seq(in[0]);
    };
    XG_CHECK_GRAD(f, {rg(x), rg(xg::randn({4, 3}, xg::f64)), rg(xg::randn({2, 4}, xg::f64))});
    XG_CHECK_GRADGRAD(f, {rg(x), rg(xg::randn({4, 3}, xg::f64)), rg(xg::randn({2, 4}, xg::f64))});

    // By name from the registry, or a user function.
    nn::Activation sig("sigmoid");
    check_close(sig(x).to_vector<double>(), xg::sigmoid(x).to_vector<double>(), 0);
    nn::Activation softsign("softsign", [](const Tensor& t) { return t / (xg::abs(t) + 1.0); });
    BOOST_TEST(softsign.extra_repr() == "softsign");
    auto g = [&](const V& in) { return softsign(in[0]); };
    XG_CHECK_GRAD(g, {rg(x)});
    XG_CHECK_GRADGRAD(g, {rg(x)});
    try {
        nn::Activation bad("no_such_activation");
        BOOST_FAIL("unknown activation accepted");
    } catch (const xg::ValueError& e) {
        BOOST_TEST(std::string(e.what()).find("relu") != std::string::npos, e.what());  // lists the known names
    }
}

BOOST_AUTO_TEST_CASE(dropout_masks_scales_and_is_identity_in_eval) {
    nn::Dropout d(0.25);
    xg::manual_seed(3);
    auto x = xg::ones({200, 100}, xg::f64);
    auto y = d(x).to_vector<double>();
    std::size_t zeros = 0;
    for (double v : y) {
        BOOST_TEST((v == 0.0 || std::abs(v - 1.0 / 0.75) < 1e-15));
        zeros += v == 0.0;
    }
    BOOST_TEST(std::abs(static_cast<double>(zeros) / y.size() - 0.25) < 0.01);
    d.eval();
    BOOST_TEST(d(x).impl() == x.impl());
    d.train();
    // The gradient is the same mask: reseed so that every evaluation draws the same mask.
    auto f = [&](const V& in) {
        xg::manual_seed(7);
        return d(in[0]);
    };
    XG_CHECK_GRAD(f, {rg(xg::randn({3, 4}, xg::f64))});
    BOOST_CHECK_THROW(nn::Dropout(1.5), xg::ValueError);
    nn::Dropout all(1.0);
    BOOST_TEST(xg::sum(xg::abs(all(x))).item<double>() == 0.0);
}

BOOST_AUTO_TEST_CASE(flatten_layer) {
    nn::Flatten fl;
    auto x = xg::randn({2, 3, 4, 5}, xg::f64);
    BOOST_TEST((fl(x).shape() == xg::Shape{2, 60}));
    nn::Flatten mid(1, 2);
    BOOST_TEST((mid(x).shape() == xg::Shape{2, 12, 5}));
    auto f = [&](const V& in) { return fl(in[0]); };
    XG_CHECK_GRAD(f, {rg(xg::randn({2, 2, 2}, xg::f64))});
}

BOOST_AUTO_TEST_CASE(layer_norm_values_and_gradcheck) {
    xg::manual_seed(4);
    nn::LayerNorm ln({3, 4}, 1e-5, true, xg::f64);
    auto x = xg::randn({2, 3, 4}, xg::f64) * 3.0 + 1.0;
    auto y = ln(x);
    // Each sample normalised over its last two dims: mean 0, biased variance 1 (up to eps).
    auto m = xg::mean(y, {1, 2}).to_vector<double>();
    auto v = xg::mean(xg::square(y), {1, 2}).to_vector<double>();
    for (double a : m) BOOST_TEST(std::abs(a) < 1e-12);
    for (double a : v) BOOST_TEST(std::abs(a - 1.0) < 1e-4);
    auto f = [&](const V& in) {
        ln.weight = in[1], ln.bias = in[2];
        return ln(in[0]);
    };
    auto xs = rg(xg::randn({2, 3, 4}, xg::f64));
    XG_CHECK_GRAD(f, {xs, rg(xg::randn({3, 4}, xg::f64)), rg(xg::randn({3, 4}, xg::f64))});
    XG_CHECK_GRADGRAD(f, {xs, rg(xg::randn({3, 4}, xg::f64)), rg(xg::randn({3, 4}, xg::f64))});
    BOOST_CHECK_THROW(ln(xg::zeros({2, 4, 3}, xg::f64)), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(batch_norm_1d_statistics_and_gradcheck) {
    nn::BatchNorm1d bn(2, 1e-5, 0.1, true, xg::f64);
    auto x = xg::tensor({1, 10, 2, 20, 3, 30, 6, 40}, {4, 2}, xg::f64);
    auto y = bn(x);
    // Channel 0: mean 3, biased var (4 + 1 + 0 + 9) / 4 = 3.5.
    check_close(xg::slice(y, 1, 0, 1).to_vector<double>(),
                {-2 / std::sqrt(3.5 + 1e-5), -1 / std::sqrt(3.5 + 1e-5), 0, 3 / std::sqrt(3.5 + 1e-5)}, 1e-12);
    // Running stats: 0.9 * init + 0.1 * batch (unbiased variance 14/3 for channel 0; 500/3 for channel 1).
    check_close(bn.running_mean.to_vector<double>(), {0.3, 2.5}, 1e-12);
    check_close(bn.running_var.to_vector<double>(), {0.9 + 0.1 * 14.0 / 3.0, 0.9 + 0.1 * 500.0 / 3.0}, 1e-12);
    BOOST_TEST(bn.num_batches_tracked.item<std::int64_t>() == 1);
    bn.eval();
    auto ye = bn(x);
    check_close(xg::slice(ye, 1, 0, 1).to_vector<double>(),
                {(1 - 0.3) / std::sqrt(0.9 + 1.4 / 3 + 1e-5), (2 - 0.3) / std::sqrt(0.9 + 1.4 / 3 + 1e-5),
                 (3 - 0.3) / std::sqrt(0.9 + 1.4 / 3 + 1e-5), (6 - 0.3) / std::sqrt(0.9 + 1.4 / 3 + 1e-5)},
                1e-12);
    BOOST_TEST(bn.num_batches_tracked.item<std::int64_t>() == 1);
    bn.train();
    xg::manual_seed(5);
    auto f = [&](const V& in) {
        bn.weight = in[1], bn.bias = in[2];
        return bn(in[0]);
    };
    auto xs = rg(xg::randn({4, 2, 3}, xg::f64));
    XG_CHECK_GRAD(f, {xs, rg(xg::randn({2}, xg::f64)), rg(xg::randn({2}, xg::f64))});
    XG_CHECK_GRADGRAD(f, {xs, rg(xg::randn({2}, xg::f64)), rg(xg::randn({2}, xg::f64))});
    BOOST_CHECK_THROW(bn(xg::zeros({1, 2}, xg::f64)), xg::ValueError);  // one value per channel
    BOOST_CHECK_THROW(bn(xg::zeros({4, 3}, xg::f64)), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(batch_norm_2d_gradcheck_and_eval) {
    xg::manual_seed(6);
    nn::BatchNorm2d bn(3, 1e-5, 0.1, true, xg::f64);
    auto x = xg::randn({2, 3, 2, 3}, xg::f64) * 2.0 + 5.0;
    auto y = bn(x);
    for (double a : xg::mean(y, {0, 2, 3}).to_vector<double>()) BOOST_TEST(std::abs(a) < 1e-12);
    check_close(bn.running_mean.to_vector<double>(), (xg::mean(x, {0, 2, 3}) * 0.1).to_vector<double>(), 1e-12);
    auto f = [&](const V& in) {
        bn.weight = in[1], bn.bias = in[2];
        return bn(in[0]);
    };
    auto xs = rg(xg::randn({2, 3, 2, 2}, xg::f64));
    XG_CHECK_GRAD(f, {xs, rg(xg::randn({3}, xg::f64)), rg(xg::randn({3}, xg::f64))});
    bn.eval();
    XG_CHECK_GRAD(f, {xs, rg(xg::randn({3}, xg::f64)), rg(xg::randn({3}, xg::f64))});
    BOOST_CHECK_THROW(bn(xg::zeros({2, 3, 4}, xg::f64)), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(embedding_rows_and_gradcheck) {
    xg::manual_seed(7);
    nn::Embedding emb(5, 3, xg::f64);
    auto idx = xg::tensor_i64({4, 0, 4, 2}, {2, 2});
    auto y = emb(idx);
    BOOST_TEST((y.shape() == xg::Shape{2, 2, 3}));
    const auto w = emb.weight.to_vector<double>(), v = y.to_vector<double>();
    const std::int64_t rows[] = {4, 0, 4, 2};
    for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 3; ++c) BOOST_TEST(v[r * 3 + c] == w[rows[r] * 3 + c]);
    xg::sum(y).backward();
    // Row 4 is used twice: its gradient accumulates.
    check_close(emb.weight.grad().to_vector<double>(), {1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 2, 2, 2}, 0);
    auto f = [&](const V& in) {
        emb.weight = in[0];
        return emb(idx);
    };
    XG_CHECK_GRAD(f, {rg(xg::randn({5, 3}, xg::f64))});
    BOOST_CHECK_THROW(emb(xg::tensor_i64({5})), xg::IndexError);
    BOOST_CHECK_THROW(emb(xg::zeros({2})), xg::DtypeError);
}

BOOST_AUTO_TEST_CASE(conv2d_layer_gradcheck) {
    xg::manual_seed(8);
    nn::Conv2d conv(2, 4, {3, 3}, {.stride = {1, 2}, .padding = {1, 1}, .groups = 2}, xg::f64);
    BOOST_TEST((conv.weight.shape() == xg::Shape{4, 1, 3, 3}));
    BOOST_TEST(conv.extra_repr() == "2, 4, kernel_size=(3, 3), stride=(1, 2), padding=(1, 1), groups=2");
    // Default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = 1 * 3 * 3.
    BOOST_TEST(xg::max(xg::abs(conv.weight)).item<double>() <= 1.0 / 3.0);
    auto f = [&](const V& in) {
        conv.weight = in[1], conv.bias = in[2];
        return conv(in[0]);
    };
    XG_CHECK_GRAD(
        f, {rg(xg::randn({2, 2, 4, 4}, xg::f64)), rg(xg::randn({4, 1, 3, 3}, xg::f64)), rg(xg::randn({4}, xg::f64))});
    BOOST_CHECK_THROW(nn::Conv2d(3, 4, {3, 3}, {.groups = 2}), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(pooling_layers_gradcheck) {
    xg::manual_seed(9);
    nn::MaxPool2d mp({2, 2});
    nn::AvgPool2d ap({2, 2}, {1, 1}, {1, 1}, false);
    nn::AdaptiveAvgPool2d aap({2, 3});
    BOOST_TEST(mp.extra_repr() == "kernel_size=(2, 2), stride=(2, 2)");
    auto x = rg(xg::randn({1, 2, 4, 5}, xg::f64));
    BOOST_TEST((mp(x).shape() == xg::Shape{1, 2, 2, 2}));
    BOOST_TEST((ap(x).shape() == xg::Shape{1, 2, 5, 6}));
    BOOST_TEST((aap(x).shape() == xg::Shape{1, 2, 2, 3}));
    XG_CHECK_GRAD([&](const V& in) { return mp(in[0]); }, {x});
    XG_CHECK_GRAD([&](const V& in) { return ap(in[0]); }, {x});
    XG_CHECK_GRAD([&](const V& in) { return aap(in[0]); }, {x});
}

BOOST_AUTO_TEST_CASE(small_cnn_end_to_end_gradcheck) {
    // Conv -> relu -> pool -> flatten -> linear, checked as one function of the input and first weight.
    xg::manual_seed(10);
    auto conv = std::make_shared<nn::Conv2d>(1, 2, xg::Size2{3, 3}, nn::Conv2dOptions{.padding = {1, 1}}, xg::f64);
    auto lin = std::make_shared<nn::Linear>(8, 3, true, xg::f64);
    nn::Sequential net{conv, std::make_shared<nn::Activation>("tanh"), std::make_shared<nn::MaxPool2d>(xg::Size2{2, 2}),
                       std::make_shared<nn::Flatten>(), lin};
    auto f = [&](const V& in) {
        conv->weight = in[1];
        return net(in[0]);
    };
    XG_CHECK_GRAD(f, {rg(xg::randn({2, 1, 4, 4}, xg::f64)), rg(xg::randn({2, 1, 3, 3}, xg::f64))});
}

BOOST_AUTO_TEST_SUITE_END()

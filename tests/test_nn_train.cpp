// Training end to end: a tiny model overfits a 64-sample batch, training is bit-identical at 1 and 2
// threads, activation statistics, metrics and charts.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
using xg::Tensor;
using Modules = std::initializer_list<std::shared_ptr<nn::Module>>;

BOOST_AUTO_TEST_SUITE(nn_train)

BOOST_AUTO_TEST_CASE(tiny_mlp_overfits_64_samples) {
    xg::manual_seed(1);
    auto x = xg::randn({64, 20});
    auto y = xg::randint(0, 4, {64});  // random labels: only memorisation fits them
    nn::Sequential model{std::make_shared<nn::Linear>(20, 64), std::make_shared<nn::Activation>("relu"),
                         std::make_shared<nn::Linear>(64, 4)};
    nn::Adam opt(model.parameters(), {.lr = 0.01});
    double first = 0, last = 0;
    for (int step = 0; step < 300; ++step) {
        opt.zero_grad();
        auto loss = nn::cross_entropy(model(x), y);
        loss.backward();
        opt.step();
        (step == 0 ? first : last) = loss.item<double>();
    }
    BOOST_TEST(last < 0.05 * first);
    BOOST_TEST(nn::count_correct(model(x), y) == 64);
}

BOOST_AUTO_TEST_CASE(tiny_cnn_overfits_64_samples) {
    xg::manual_seed(2);
    auto x = xg::randn({64, 1, 8, 8});
    auto y = xg::randint(0, 3, {64});
    nn::Sequential model{std::make_shared<nn::Conv2d>(1, 8, xg::Size2{3, 3}, nn::Conv2dOptions{.padding = {1, 1}}),
                         std::make_shared<nn::BatchNorm2d>(8),
                         std::make_shared<nn::Activation>("relu"),
                         std::make_shared<nn::MaxPool2d>(xg::Size2{2, 2}),
                         std::make_shared<nn::Flatten>(),
                         std::make_shared<nn::Linear>(128, 3)};
    nn::AdamW opt(model.parameters(), {.lr = 0.01, .weight_decay = 0.0});
    for (int step = 0; step < 150; ++step) {
        opt.zero_grad();
        nn::cross_entropy(model(x), y).backward();
        opt.step();
    }
    model.eval();
    BOOST_TEST(nn::count_correct(model(x), y) == 64);
}

BOOST_AUTO_TEST_CASE(training_is_bit_identical_at_one_and_two_threads) {
    // Sizes above the kernels' grain sizes, so that the 2-thread run really splits the work.
    auto run = [](int threads) {
        xg::set_num_threads(threads);
        xg::manual_seed(3);
        auto x = xg::randn({256, 300});
        auto y = xg::randint(0, 10, {256});
        nn::Sequential model{std::make_shared<nn::Linear>(300, 256), std::make_shared<nn::Activation>("tanh"),
                             std::make_shared<nn::Dropout>(0.1), std::make_shared<nn::Linear>(256, 10)};
        nn::SGD opt(model.parameters(), {.lr = 0.05, .momentum = 0.9});
        for (int step = 0; step < 5; ++step) {
            opt.zero_grad();
            nn::cross_entropy(model(x), y).backward();
            opt.step();
        }
        std::vector<float> all;
        for (const auto& p : model.parameters())
            for (float v : p.to_vector<float>()) all.push_back(v);
        return all;
    };
    const int before = xg::get_num_threads();
    const auto one = run(1), two = run(2);
    xg::set_num_threads(before);
    BOOST_REQUIRE_EQUAL(one.size(), two.size());
    BOOST_TEST(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(activation_statistics_per_layer) {
    auto relu = std::make_shared<nn::Activation>("relu");
    auto sig = std::make_shared<nn::Activation>("sigmoid");
    auto lin = std::make_shared<nn::Linear>(4, 4, true, xg::f64);
    nn::Sequential model{lin, relu, sig};
    nn::ActivationMonitor mon;
    mon.attach_all(model, {"Activation", "Linear"});
    {
        xg::NoGradGuard ng;
        lin->weight.copy_(xg::eye(4, 4, xg::f64) * 20.0);
        lin->bias.fill_(0.0);
    }
    // Inputs: half negative (dead after relu), and 20x scaling saturates the sigmoid on the positive half.
    auto x = xg::tensor({-1, -2, 1, 2, -3, -4, 3, 4}, {2, 4}, xg::f64);
    auto out = model(x);
    xg::sum(out).backward();
    const auto st = mon.stats();
    BOOST_REQUIRE_EQUAL(st.size(), 3u);
    BOOST_TEST(st[0].name == "0");
    BOOST_TEST(st[0].type == "Linear");
    BOOST_TEST(st[1].type == "relu");
    BOOST_TEST(st[1].zero_fraction() == 0.5);
    BOOST_TEST(st[1].saturated_fraction() == 0.5);  // relu' = 0 on the dead half
    BOOST_TEST(std::abs(st[1].mean() - (20 + 40 + 60 + 80) / 8.0) < 1e-12);
    BOOST_TEST(std::isnan(st[0].saturated_fraction()));  // not an activation
    // sigmoid: inputs 0 (f' = 1/4) on half, >= 20 (f' < 1e-3) on the other half.
    BOOST_TEST(st[2].saturated_fraction() == 0.5);
    // The gradient reaching the sigmoid's output is all ones: norm sqrt(8).
    BOOST_TEST(std::abs(st[2].grad_norm() - std::sqrt(8.0)) < 1e-12);
    BOOST_TEST(st[1].grad_count == 1);
    const std::string rep = mon.report();
    BOOST_TEST(rep.find("sigmoid") != std::string::npos, rep);
    BOOST_TEST(rep.find("50.00%") != std::string::npos, rep);
    // Disabled: nothing recorded; reset clears; detach removes the hooks.
    mon.reset();
    mon.enable(false);
    model(x);
    BOOST_TEST(mon.stats()[1].count == 0);
    mon.enable(true);
    model(x);
    BOOST_TEST(mon.stats()[1].count == 8);
    mon.detach();
    model(x);
    BOOST_TEST(mon.stats()[1].count == 8);
}

BOOST_AUTO_TEST_CASE(metrics_and_chart) {
    auto pred = xg::tensor_i64({0, 1, 1, 2, 2, 2});
    auto target = xg::tensor_i64({0, 1, 2, 2, 2, 0});
    const auto m = nn::confusion_matrix(pred, target, 3);
    const std::vector<std::vector<std::int64_t>> want{{1, 0, 1}, {0, 1, 0}, {0, 1, 2}};
    BOOST_TEST((m == want));
    const std::string table = nn::format_confusion_matrix(m, {"a", "b", "c"});
    BOOST_TEST(table.find("0.667") != std::string::npos, table);  // recall of class c: 2/3
    BOOST_CHECK_THROW(nn::confusion_matrix(pred, xg::tensor_i64({0, 1, 2, 3, 0, 0}), 3), xg::IndexError);
    auto logits = xg::tensor({0.1, 0.9, 0.8, 0.2, 0.3, 0.7}, {3, 2});
    BOOST_TEST(nn::count_correct(logits, xg::tensor_i64({1, 0, 0})) == 2);
    const std::string svg = nn::svg_line_chart(
        "loss <test>", "epoch", "loss", {{"train", {1, 2, 3}, {1.0, 0.5, 0.25}}, {"test", {1, 2, 3}, {1.1, NAN, 0.4}}});
    BOOST_TEST(svg.rfind("<svg", 0) == 0u);
    BOOST_TEST(svg.find("loss &lt;test&gt;") != std::string::npos);
    BOOST_TEST(std::count(svg.begin(), svg.end(), '\n') > 10);
    std::size_t polylines = 0;
    for (std::size_t pos = 0; (pos = svg.find("<polyline", pos)) != std::string::npos; ++pos) ++polylines;
    BOOST_TEST(polylines == 2u);
}

BOOST_AUTO_TEST_SUITE_END()

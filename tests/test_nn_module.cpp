// Module (names, modes, dtype, state dicts, hooks, printing) and the initializers.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
using xg::Tensor;

namespace {
// A two-level model: Sequential(Linear, tanh, Sequential(Linear, BatchNorm1d)).
std::shared_ptr<nn::Sequential> make_model() {
    auto inner = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(3, 2), std::make_shared<nn::BatchNorm1d>(2)});
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(4, 3), std::make_shared<nn::Activation>("tanh"), inner});
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_module)

BOOST_AUTO_TEST_CASE(named_parameters_are_dotted_and_recursive) {
    auto m = make_model();
    std::vector<std::string> names;
    for (const auto& [n, p] : m->named_parameters()) names.push_back(n);
    const std::vector<std::string> want{"0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.weight", "2.1.bias"};
    BOOST_TEST(names == want, boost::test_tools::per_element());
    BOOST_TEST(m->parameters().size() == 6u);
    BOOST_TEST(m->num_parameters() == 4 * 3 + 3 + 3 * 2 + 2 + 2 + 2);
    for (const auto& p : m->parameters()) BOOST_TEST(p.requires_grad());
    std::vector<std::string> sd;
    for (const auto& [n, t] : m->state_dict()) sd.push_back(n);
    BOOST_TEST(sd.size() == 9u);  // + running_mean, running_var, num_batches_tracked
    BOOST_TEST(sd.back() == "2.1.num_batches_tracked");
    std::vector<std::string> mods;
    for (const auto& [n, mod] : m->named_modules()) mods.push_back(n + ":" + mod->type_name());
    const std::vector<std::string> want_mods{"0:Linear", "1:Activation", "2:Sequential", "2.0:Linear",
                                             "2.1:BatchNorm1d"};
    BOOST_TEST(mods == want_mods, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(printing_lists_layers_and_parameter_counts) {
    auto m = make_model();
    const std::string s = m->to_string();
    BOOST_TEST(contains(s, "(0): Linear(in_features=4, out_features=3, bias=true)  # 15 parameters"), s);
    BOOST_TEST(contains(s, "(1): Activation(tanh)"), s);
    BOOST_TEST(contains(s, "    (1): BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=true)  # 4 parameters"), s);
    BOOST_TEST(contains(s, "Total parameters: 27 (trainable 27)"), s);
    BOOST_TEST(nn::format_count(235146) == "235,146");
    BOOST_TEST(nn::format_count(999) == "999");
}

BOOST_AUTO_TEST_CASE(train_eval_and_zero_grad_recurse) {
    auto m = make_model();
    m->eval();
    for (const auto& [n, mod] : m->named_modules()) BOOST_TEST(!mod->is_training());
    m->train();
    for (const auto& [n, mod] : m->named_modules()) BOOST_TEST(mod->is_training());
    auto y = (*m)(xg::randn({5, 4}));
    xg::sum(y * y).backward();
    for (const auto& p : m->parameters()) BOOST_TEST(p.grad().defined());
    m->zero_grad();
    for (const auto& p : m->parameters()) BOOST_TEST(!p.grad().defined());
}

BOOST_AUTO_TEST_CASE(to_converts_parameters_and_floating_buffers) {
    auto m = make_model();
    auto before = m->state_dict();
    m->to(xg::f64);
    for (const auto& [n, t] : m->state_dict()) {
        if (n == "2.1.num_batches_tracked")
            BOOST_TEST((t.dtype() == xg::i64));
        else
            BOOST_TEST((t.dtype() == xg::f64), n);
    }
    for (const auto& p : m->parameters()) BOOST_TEST((p.requires_grad() && p.is_leaf()));
    // Same values, and the layers use the converted tensors.
    BOOST_TEST(m->state_dict()[0].second.to_vector<double>() == before[0].second.to_vector<double>(),
               boost::test_tools::per_element());
    BOOST_TEST((((*m)(xg::randn({3, 4}, xg::f64))).dtype() == xg::f64));
    BOOST_CHECK_THROW(m->to(xg::i64), xg::DtypeError);
}

BOOST_AUTO_TEST_CASE(load_state_dict_round_trip_and_errors) {
    xg::manual_seed(1);
    auto a = make_model();
    auto b = make_model();  // different random weights
    auto x = xg::randn({4, 4});
    a->eval(), b->eval();
    b->load_state_dict(a->state_dict());
    BOOST_TEST((*a)(x).to_vector<float>() == (*b)(x).to_vector<float>(), boost::test_tools::per_element());
    // Loading copies values: b's parameters stay distinct tensors (an optimizer over them keeps working).
    BOOST_TEST(a->parameters()[0].impl() != b->parameters()[0].impl());

    auto sd = a->state_dict();
    const auto original = b->parameters()[0].to_vector<float>();
    auto missing = sd;
    missing.erase(missing.begin() + 1);  // 0.bias
    try {
        b->load_state_dict(missing);
        BOOST_FAIL("missing entry accepted");
    } catch (const xg::ValueError& e) {
        BOOST_TEST(contains(e.what(), "missing entries: 0.bias"), e.what());
    }
    auto unexpected = sd;
    unexpected.emplace_back("3.weight", xg::zeros({2}));
    try {
        b->load_state_dict(unexpected);
        BOOST_FAIL("unexpected entry accepted");
    } catch (const xg::ValueError& e) {
        BOOST_TEST(contains(e.what(), "unexpected entries: 3.weight"), e.what());
    }
    auto bad_shape = sd;
    bad_shape[0].second = xg::zeros({4, 3});
    bad_shape[0].second.requires_grad_(false);
    try {
        b->load_state_dict(bad_shape);
        BOOST_FAIL("mis-shaped entry accepted");
    } catch (const xg::ValueError& e) {
        BOOST_TEST(contains(e.what(), "'0.weight' expects shape [3,4], got [4,3]"), e.what());
    }
    // A failed load modifies nothing.
    b->load_state_dict(a->state_dict());
    auto c = make_model();
    const auto c0 = c->parameters()[0].to_vector<float>();
    BOOST_CHECK_THROW(c->load_state_dict(bad_shape), xg::ValueError);
    BOOST_TEST(c->parameters()[0].to_vector<float>() == c0, boost::test_tools::per_element());
    // Non-strict loading accepts missing and unexpected names, never wrong shapes.
    BOOST_CHECK_NO_THROW(c->load_state_dict(missing, false));
    BOOST_CHECK_NO_THROW(c->load_state_dict(unexpected, false));
    BOOST_CHECK_THROW(c->load_state_dict(bad_shape, false), xg::ValueError);
    (void)original;
}

BOOST_AUTO_TEST_CASE(forward_hooks_see_input_and_output) {
    auto lin = std::make_shared<nn::Linear>(2, 2);
    int calls = 0;
    xg::Shape seen_in, seen_out;
    const auto id = lin->register_forward_hook([&](nn::Module& m, const Tensor& in, const Tensor& out) {
        ++calls;
        BOOST_TEST(m.type_name() == "Linear");
        seen_in = in.shape(), seen_out = out.shape();
    });
    (*lin)(xg::zeros({3, 2}));
    BOOST_TEST(calls == 1);
    BOOST_TEST((seen_in == xg::Shape{3, 2} && seen_out == xg::Shape{3, 2}));
    lin->forward(xg::zeros({3, 2}));  // forward() itself runs no hooks
    BOOST_TEST(calls == 1);
    lin->remove_forward_hook(id);
    (*lin)(xg::zeros({3, 2}));
    BOOST_TEST(calls == 1);
}

BOOST_AUTO_TEST_CASE(gains_follow_pytorch_and_the_second_moment_rule) {
    BOOST_TEST(nn::init::calculate_gain("linear") == 1.0);
    BOOST_TEST(nn::init::calculate_gain("sigmoid") == 1.0);
    BOOST_TEST(nn::init::calculate_gain("tanh") == 5.0 / 3.0);
    BOOST_TEST(nn::init::calculate_gain("relu") == std::sqrt(2.0));
    BOOST_TEST(nn::init::calculate_gain("leaky_relu", 0.2) == std::sqrt(2.0 / 1.04));
    BOOST_TEST(nn::init::calculate_gain("selu") == 0.75);
    // A user activation: 1/sqrt(E[f(z)^2]); relu under another name must give sqrt(2).
    xg::register_activation("test_relu_copy", [](const Tensor& x) { return xg::relu(x); });
    BOOST_TEST(std::abs(nn::init::calculate_gain("test_relu_copy") - std::sqrt(2.0)) < 1e-6);
    xg::register_activation("test_scaled", [](const Tensor& x) { return x * 2.0; });
    BOOST_TEST(std::abs(nn::init::calculate_gain("test_scaled") - 0.5) < 1e-6);
    BOOST_CHECK_THROW(nn::init::calculate_gain("no_such_activation"), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(initializers_have_the_documented_spread_and_are_seeded) {
    auto w = xg::zeros({400, 300});
    const auto [fi, fo] = nn::init::fan_in_and_fan_out(w);
    BOOST_TEST((fi == 300 && fo == 400));
    auto conv = xg::zeros({8, 4, 3, 3});
    BOOST_TEST((nn::init::fan_in_and_fan_out(conv) == std::pair<std::int64_t, std::int64_t>{36, 72}));

    auto spread = [](const Tensor& t) { return xg::nn::mean_std(t); };
    xg::manual_seed(11);
    nn::init::xavier_uniform_(w, 2.0);
    const double a = 2.0 * std::sqrt(6.0 / 700.0);
    BOOST_TEST(xg::max(w).item<double>() <= a);
    BOOST_TEST(xg::min(w).item<double>() >= -a);
    BOOST_TEST(std::abs(spread(w).second - a / std::sqrt(3.0)) < 0.02 * a);
    nn::init::xavier_normal_(w);
    BOOST_TEST(std::abs(spread(w).second - std::sqrt(2.0 / 700.0)) < 0.02 * std::sqrt(2.0 / 700.0));
    nn::init::kaiming_normal_(w, 0.0, nn::init::FanMode::fan_in, "relu");
    BOOST_TEST(std::abs(spread(w).second - std::sqrt(2.0 / 300.0)) < 0.02 * std::sqrt(2.0 / 300.0));
    nn::init::kaiming_uniform_(w, 0.0, nn::init::FanMode::fan_out, "tanh");
    const double bound = 5.0 / 3.0 * std::sqrt(3.0 / 400.0);
    BOOST_TEST(xg::max(xg::abs(w)).item<double>() <= bound);
    BOOST_TEST(std::abs(spread(w).second - bound / std::sqrt(3.0)) < 0.02 * bound);
    nn::init::constant_(w, 0.25);
    BOOST_TEST(spread(w).first == 0.25);
    nn::init::ones_(w);
    BOOST_TEST(xg::min(w).item<double>() == 1.0);
    nn::init::zeros_(w);
    BOOST_TEST(xg::max(xg::abs(w)).item<double>() == 0.0);

    // Seeded: the same seed gives the same weights, a parameter keeps requires_grad and its identity.
    nn::Linear l1(5, 4), l2(5, 4);
    const auto impl = l1.weight.impl();
    xg::manual_seed(42);
    nn::init::kaiming_uniform_(l1.weight, 0.0, nn::init::FanMode::fan_in, "relu");
    xg::manual_seed(42);
    nn::init::kaiming_uniform_(l2.weight, 0.0, nn::init::FanMode::fan_in, "relu");
    BOOST_TEST(l1.weight.to_vector<float>() == l2.weight.to_vector<float>(), boost::test_tools::per_element());
    BOOST_TEST(l1.weight.impl() == impl);
    BOOST_TEST(l1.weight.requires_grad());
}

BOOST_AUTO_TEST_SUITE_END()

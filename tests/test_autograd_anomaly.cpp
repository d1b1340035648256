// Anomaly mode: the op that first produces NaN/inf (forward or backward) is named, with the place
// where it was created; ops that merely pass a NaN on are not blamed.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <thread>
#include <xgrad/xgrad.hpp>

namespace {
xg::Tensor f64(std::initializer_list<double> v, xg::Shape s = {-1}) { return xg::tensor(v, s, xg::f64); }
std::string what_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const xg::ValueError& e) {
        return e.what();
    }
    return "";
}
bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Where the sqrt is created: the trace must lead here.
__attribute__((noinline)) xg::Tensor anomaly_test_build_sqrt(const xg::Tensor& x) { return xg::sqrt(x) * 3.0; }
}  // namespace

BOOST_AUTO_TEST_SUITE(autograd_anomaly)

BOOST_AUTO_TEST_CASE(guard_turns_anomaly_mode_on_for_its_scope_and_thread) {
    BOOST_TEST(!xg::is_anomaly_enabled());
    {
        xg::AnomalyGuard g;
        BOOST_TEST(xg::is_anomaly_enabled());
        bool other = true;
        std::thread t([&] { other = xg::is_anomaly_enabled(); });
        t.join();
        BOOST_TEST(!other);
    }
    BOOST_TEST(!xg::is_anomaly_enabled());
}

BOOST_AUTO_TEST_CASE(without_anomaly_mode_nan_is_returned_as_in_pytorch) {
    auto y = xg::sqrt(f64({-1}));
    BOOST_TEST(std::isnan(y.item<double>()));
    auto l = xg::log(f64({-1}));
    BOOST_TEST(std::isnan(l.item<double>()));
}

BOOST_AUTO_TEST_CASE(forward_nan_from_finite_inputs_names_the_op_and_where_it_was_created) {
    xg::AnomalyGuard g;
    auto x = f64({4, -1}).requires_grad_();
    const std::string msg = what_of([&] { anomaly_test_build_sqrt(x * 1.0); });
    BOOST_TEST(starts_with(msg, "sqrt: forward produced NaN or inf"), msg);
    BOOST_TEST(msg.find("created at") != std::string::npos, msg);
    BOOST_TEST(msg.find("anomaly_test_build_sqrt") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(forward_check_also_covers_ops_outside_the_graph) {
    xg::AnomalyGuard g;
    const std::string msg = what_of([] { xg::log(f64({0.5, 0})); });  // log(0) = -inf
    BOOST_TEST(starts_with(msg, "log: forward produced NaN or inf"), msg);
}

BOOST_AUTO_TEST_CASE(ops_that_pass_a_nan_on_are_not_blamed) {
    auto bad = xg::sqrt(f64({-1, 4}).requires_grad_());  // made outside anomaly mode
    xg::AnomalyGuard g;
    auto y = xg::exp(bad * 2.0) + 1.0;  // NaN in, NaN out: not these ops' fault
    BOOST_TEST(std::isnan(y.to_vector<double>()[0]));
}

BOOST_AUTO_TEST_CASE(backward_inf_is_blamed_on_the_op_whose_rule_produced_it) {
    // sqrt'(0) = 1 / (2 sqrt 0) = inf. The rule computes it with div and mul ops, and mul (x * 1)
    // below receives the inf: neither may be blamed, only sqrt, with its creation trace.
    xg::AnomalyGuard g;
    auto x = f64({0, 1}).requires_grad_();
    auto loss = xg::sum(anomaly_test_build_sqrt(x * 1.0));
    const std::string msg = what_of([&] { loss.backward(); });
    BOOST_TEST(starts_with(msg, "sqrt: backward produced NaN or inf from a finite gradient"), msg);
    BOOST_TEST(msg.find("anomaly_test_build_sqrt") != std::string::npos, msg);
    BOOST_TEST(!x.grad().defined());
}

BOOST_AUTO_TEST_CASE(backward_check_of_a_graph_built_outside_anomaly_mode) {
    auto x = f64({0}).requires_grad_();
    auto loss = xg::sum(xg::sqrt(x));
    xg::AnomalyGuard g;
    const std::string msg = what_of([&] { loss.backward(); });
    BOOST_TEST(starts_with(msg, "sqrt: backward"), msg);
    BOOST_TEST(msg.find("outside anomaly mode") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(finite_computations_pass_untouched_in_anomaly_mode) {
    xg::AnomalyGuard g;
    auto x = f64({0.5, 2}).requires_grad_();
    auto loss = xg::sum(xg::sqrt(x) * xg::log(x));
    loss.backward();
    const auto gx = x.grad().to_vector<double>();
    for (int i = 0; i < 2; ++i) {
        const double v = x.to_vector<double>()[i];
        BOOST_TEST(gx[i] == std::log(v) / (2 * std::sqrt(v)) + 1 / std::sqrt(v), boost::test_tools::tolerance(1e-13));
    }
}

BOOST_AUTO_TEST_SUITE_END()

// gradcheck / gradgradcheck as a public API: what passes, what is caught, what the report says.
#include <boost/test/unit_test.hpp>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

namespace {
using Tensors = std::vector<xg::Tensor>;
using Grads = std::vector<xg::Tensor>;
xg::Tensor f64(std::initializer_list<double> v, xg::Shape s = {-1}) { return xg::tensor(v, s, xg::f64); }
bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// x * w with a rule whose d y[bad] / d w[bad] is off by +1 (every other entry of J is right).
xg::Tensor mul_wrong_at(const xg::Tensor& x, const xg::Tensor& w, std::int64_t bad) {
    xg::Tensor y;
    {
        xg::NoGradGuard ng;
        y = x * w;
    }
    std::vector<double> m(static_cast<std::size_t>(w.numel()), 0.0);
    m[static_cast<std::size_t>(bad)] = 1.0;
    const auto mask = xg::tensor(m, w.shape(), xg::f64);
    xg::Saved sx(x, "mul_wrong"), sw(w, "mul_wrong");
    return xg::make_result("mul_wrong", y.array(), {x, w}, [sx, sw, mask](const xg::Tensor& g, const xg::Tensor&) {
        return Grads{g * sw.get(), g * (sx.get() + mask)};
    });
}
}  // namespace

BOOST_AUTO_TEST_SUITE(gradcheck)

BOOST_AUTO_TEST_CASE(defaults_are_pytorchs) {
    const xg::GradcheckOptions o;
    BOOST_TEST(o.eps == 1e-6);
    BOOST_TEST(o.atol == 1e-5);
    BOOST_TEST(o.rtol == 1e-3);
    BOOST_TEST(!o.fast_mode);
    BOOST_TEST(o.check_reentrant);
    BOOST_TEST(o.check_no_grad_inputs);
}

BOOST_AUTO_TEST_CASE(passes_on_correct_ops_with_several_inputs_and_outputs) {
    xg::manual_seed(7);
    auto x = xg::randn({3, 4}, xg::f64).requires_grad_();
    auto w = xg::randn({4, 2}, xg::f64).requires_grad_();
    auto b = xg::randn({2}, xg::f64).requires_grad_();
    auto fn = [](const Tensors& in) {
        auto h = xg::matmul(in[0], in[1]) + in[2];
        return Tensors{xg::sigmoid(h), xg::sum(xg::tanh(h) * h, {0})};
    };
    const auto r = xg::gradcheck(fn, {x, w, b});
    BOOST_TEST(static_cast<bool>(r), r.report());
    BOOST_TEST(r.entries.size() == 6u);  // 2 outputs x 3 inputs
    BOOST_TEST(r.problems.empty());
    BOOST_TEST(contains(r.report(), "gradcheck passed"));
    XG_CHECK_GRAD(fn, {x, w, b});
    XG_CHECK_GRADGRAD(fn, {x, w, b});
}

BOOST_AUTO_TEST_CASE(a_wrong_rule_fails_and_the_report_locates_the_worst_element) {
    auto x = xg::tensor({0.5, -1, 2, 0.25, 3, -0.75}, {2, 3}, xg::f64).requires_grad_();
    auto w = xg::tensor({1.5, 2, -0.5, 1, 0.1, 0.2}, {2, 3}, xg::f64).requires_grad_();
    auto fn = [](const Tensors& in) { return mul_wrong_at(in[0], in[1], 5); };  // element [1,2] of w
    const auto r = xg::gradcheck(fn, {x, w});
    BOOST_TEST(!r);
    BOOST_REQUIRE(r.entries.size() == 2u);
    const auto& ok_entry = r.entries[0];
    const auto& bad = r.entries[1];
    BOOST_TEST(ok_entry.ok);
    BOOST_TEST(!bad.ok);
    BOOST_TEST(bad.output == 0u);
    BOOST_TEST(bad.input == 1u);
    BOOST_TEST(bad.worst_index == 5);
    BOOST_TEST(bad.worst_output_index == 5);
    // d y[1,2] / d w[1,2] = x[1,2] = -0.75; the rule says 0.25.
    BOOST_TEST(bad.numerical == -0.75, boost::test_tools::tolerance(1e-8));
    BOOST_TEST(bad.analytical == 0.25);
    BOOST_TEST(bad.abs_error == 1.0, boost::test_tools::tolerance(1e-8));
    BOOST_TEST(bad.rel_error == 1 / 0.75, boost::test_tools::tolerance(1e-8));
    BOOST_TEST(!bad.at_kink);
    const std::string rep = r.report();
    BOOST_TEST(contains(rep, "gradcheck FAILED"), rep);
    BOOST_TEST(contains(rep, "FAIL output 0 / input 1: worst element input[1,2] -> output[1,2]"), rep);
    BOOST_TEST(contains(rep, "analytical 0.25 numerical -0.75"), rep);
    BOOST_TEST(contains(rep, "abs err 1"), rep);
    BOOST_TEST(contains(rep, "rel err 1.33333"), rep);
    BOOST_TEST(contains(rep, "ok   output 0 / input 0"), rep);
    BOOST_TEST(!contains(rep, "kink"), rep);
}

BOOST_AUTO_TEST_CASE(the_report_names_the_failing_output) {
    auto x = f64({0.5, -1}).requires_grad_();
    auto w = f64({1.5, 2}).requires_grad_();
    auto fn = [](const Tensors& in) { return Tensors{in[0] * in[1], mul_wrong_at(in[0], in[1], 0)}; };
    const auto r = xg::gradcheck(fn, {x, w});
    BOOST_TEST(!r);
    BOOST_TEST(contains(r.report(), "FAIL output 1 / input 1: worst element input[0] -> output[0]"), r.report());
    BOOST_TEST(contains(r.report(), "ok   output 0 / input 1"), r.report());
}

BOOST_AUTO_TEST_CASE(a_kink_at_the_worst_element_is_reported) {
    // relu'(0) = 0 by convention but the central difference sees slope 1/2 there.
    auto x = f64({-1, 0, 2}).requires_grad_();
    const auto r = xg::gradcheck([](const Tensors& in) { return xg::relu(in[0]); }, {x});
    BOOST_TEST(!r);
    BOOST_REQUIRE(r.entries.size() == 1u);
    BOOST_TEST(r.entries[0].worst_index == 1);
    BOOST_TEST(r.entries[0].analytical == 0.0);
    BOOST_TEST(r.entries[0].numerical == 0.5, boost::test_tools::tolerance(1e-6));
    BOOST_TEST(r.entries[0].at_kink);
    BOOST_TEST(contains(r.report(), "WARNING: the worst element sits at a kink"), r.report());
    // Just beside the kink the central difference straddles it: also flagged.
    auto near = f64({1e-7}).requires_grad_();
    const auto r2 = xg::gradcheck([](const Tensors& in) { return xg::abs(in[0]); }, {near});
    BOOST_TEST(!r2);
    BOOST_TEST(r2.entries[0].at_kink);
    // Away from it relu passes.
    BOOST_TEST(static_cast<bool>(
        xg::gradcheck([](const Tensors& in) { return xg::relu(in[0]); }, {f64({-1, 2}).requires_grad_()})));
}

BOOST_AUTO_TEST_CASE(float32_inputs_are_promoted_and_the_report_says_so) {
    auto x = xg::tensor({0.3, -0.7});  // float32
    x.requires_grad_();
    const auto r = xg::gradcheck([](const Tensors& in) { return xg::tanh(in[0]) * in[0]; }, {x});
    BOOST_TEST(static_cast<bool>(r), r.report());
    BOOST_TEST(r.promoted_from_float32);
    BOOST_TEST(contains(r.report(), "float32 inputs were promoted to float64"), r.report());
    BOOST_TEST((x.dtype() == xg::f32));  // the caller's tensor is untouched
    const auto r64 = xg::gradcheck([](const Tensors& in) { return xg::tanh(in[0]); }, {f64({0.3}).requires_grad_()});
    BOOST_TEST(!r64.promoted_from_float32);
    BOOST_TEST(!contains(r64.report(), "promoted"));
}

BOOST_AUTO_TEST_CASE(a_non_reentrant_backward_is_detected) {
    // The rule adds a tiny random term: numerically invisible, but two runs differ.
    auto noisy = [](const Tensors& in) {
        xg::Tensor y;
        {
            xg::NoGradGuard ng;
            y = in[0] * in[0];
        }
        xg::Saved sx(in[0], "noisy_square");
        return xg::make_result("noisy_square", y.array(), {in[0]}, [sx](const xg::Tensor& g, const xg::Tensor&) {
            return Grads{g * sx.get() * 2.0 + xg::rand(g.shape(), xg::f64) * 1e-12};
        });
    };
    auto x = f64({0.5, -1}).requires_grad_();
    const auto r = xg::gradcheck(noisy, {x});
    BOOST_TEST(!r);
    for (const auto& e : r.entries) BOOST_TEST(e.ok);  // the values themselves are within tolerance
    BOOST_REQUIRE(r.problems.size() == 1u);
    BOOST_TEST(contains(r.problems[0], "not reentrant"));
    BOOST_TEST(contains(r.report(), "FAIL backward is not reentrant"), r.report());
    xg::GradcheckOptions fast;
    fast.fast_mode = true;
    const auto rf = xg::gradcheck(noisy, {x}, fast);
    BOOST_TEST(!rf);
    BOOST_TEST(contains(rf.report(), "not reentrant"), rf.report());
    xg::GradcheckOptions off;
    off.check_reentrant = false;
    BOOST_TEST(static_cast<bool>(xg::gradcheck(noisy, {x}, off)));
}

BOOST_AUTO_TEST_CASE(a_gradient_given_to_an_input_without_requires_grad_is_detected) {
    // The function switches requires_grad on for its second input behind the caller's back.
    auto sneaky = [](const Tensors& in) {
        xg::Tensor c = in[1];
        c.requires_grad_();
        return in[0] * c;
    };
    auto x = f64({0.5, -1}).requires_grad_();
    auto c = f64({2, 3});
    const auto r = xg::gradcheck(sneaky, {x, c});
    BOOST_TEST(!r);
    BOOST_TEST(contains(r.report(), "input 1 does not require grad but received a gradient"), r.report());
    BOOST_TEST(!c.requires_grad());  // the caller's tensor was not touched
    auto honest = [](const Tensors& in) { return in[0] * in[1]; };
    BOOST_TEST(static_cast<bool>(xg::gradcheck(honest, {x, c})));
}

BOOST_AUTO_TEST_CASE(integer_inputs_pass_through_unchanged) {
    auto x = xg::tensor({1, 2, 3, 4, 5, 6}, {3, 2}, xg::f64).requires_grad_();
    auto idx = xg::tensor_i64({2, 0, 2});
    XG_CHECK_GRAD([](const Tensors& in) { return xg::index_select(in[0], 0, in[1]) * 2.0; }, {x, idx});
}

BOOST_AUTO_TEST_CASE(fast_mode_checks_a_200x200_input_with_random_projections) {
    xg::manual_seed(11);
    auto X = xg::randn({200, 200}, xg::f64).requires_grad_();
    auto W = xg::randn({200, 3}, xg::f64).requires_grad_();
    auto fn = [](const Tensors& in) { return xg::tanh(xg::matmul(in[0], in[1])) * 0.5; };
    xg::GradcheckOptions o;
    o.fast_mode = true;
    const auto r = xg::gradcheck(fn, {X, W}, o);
    BOOST_TEST(static_cast<bool>(r), r.report());
    BOOST_TEST(r.entries.size() == static_cast<std::size_t>(o.fast_projections));
    for (const auto& e : r.entries) BOOST_TEST(e.projection);
    BOOST_TEST(contains(r.report(), "fast mode"));
    BOOST_TEST(contains(r.report(), "projection u^T J v"));
    // And it catches a rule that is 1% off.
    auto off = [](const Tensors& in) {
        xg::Tensor y;
        {
            xg::NoGradGuard ng;
            y = xg::tanh(in[0]);
        }
        return xg::make_result(
            "tanh_off", y.array(), {in[0]},
            [](const xg::Tensor& g, const xg::Tensor& out) { return Grads{xg::tanh_backward(g, out) * 1.01}; }, true);
    };
    const auto rb = xg::gradcheck(off, {X}, o);
    BOOST_TEST(!rb, rb.report());
}

BOOST_AUTO_TEST_CASE(gradgradcheck_catches_a_rule_that_is_not_differentiable) {
    // The rule is right to first order but computes with a detached x, so its own derivative is lost.
    auto detached_square = [](const Tensors& in) {
        xg::Tensor y;
        {
            xg::NoGradGuard ng;
            y = in[0] * in[0];
        }
        const xg::Tensor xd = in[0].detach();
        return xg::make_result("detached_square", y.array(), {in[0]},
                               [xd](const xg::Tensor& g, const xg::Tensor&) { return Grads{g * xd * 2.0}; });
    };
    auto x = f64({0.5, -1.5}).requires_grad_();
    BOOST_TEST(static_cast<bool>(xg::gradcheck(detached_square, {x})));
    const auto r = xg::gradgradcheck(detached_square, {x});
    BOOST_TEST(!r);
    BOOST_TEST(contains(r.report(), "FAIL output 0 / input 0"), r.report());
    XG_CHECK_GRADGRAD([](const Tensors& in) { return in[0] * in[0]; }, {x});
}

BOOST_AUTO_TEST_CASE(the_callers_inputs_gradients_and_generator_are_left_alone) {
    auto x = f64({0.5, -1}).requires_grad_();
    xg::manual_seed(5);
    const auto expected = xg::randn({4}).to_vector<float>();
    xg::manual_seed(5);
    xg::GradcheckOptions fast;
    fast.fast_mode = true;
    xg::gradcheck([](const Tensors& in) { return xg::exp(in[0]); }, {x}, fast);
    xg::gradgradcheck([](const Tensors& in) { return xg::exp(in[0]); }, {x});
    BOOST_TEST(xg::randn({4}).to_vector<float>() == expected, boost::test_tools::per_element());
    BOOST_TEST(x.to_vector<double>() == std::vector<double>({0.5, -1}), boost::test_tools::per_element());
    BOOST_TEST(!x.grad().defined());
}

BOOST_AUTO_TEST_CASE(bad_arguments_throw) {
    auto c = f64({1});
    BOOST_CHECK_THROW(xg::gradcheck([](const Tensors& in) { return in[0]; }, {c}), xg::ValueError);
    BOOST_CHECK_THROW(xg::gradcheck([](const Tensors& in) { return in[0]; }, {xg::Tensor()}), xg::ValueError);
}

// The macro fails the enclosing test case with the report: exactly one failure is expected here.
BOOST_AUTO_TEST_CASE(xg_check_grad_fails_the_test_case_on_a_wrong_rule, *boost::unit_test::expected_failures(1)) {
    auto x = f64({0.5, -1}).requires_grad_();
    auto w = f64({1.5, 2}).requires_grad_();
    XG_CHECK_GRAD([](const Tensors& in) { return mul_wrong_at(in[0], in[1], 1); }, {x, w});
}

BOOST_AUTO_TEST_SUITE_END()

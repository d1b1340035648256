// In-place updates (for optimizers) and the version counter that guards saved tensors.
#include <boost/test/unit_test.hpp>
#include <xgrad/xgrad.hpp>

namespace {
namespace tt = boost::test_tools;
xg::Tensor f64(std::initializer_list<double> v, xg::Shape s = {-1}) { return xg::tensor(v, s, xg::f64); }
std::vector<double> values(const xg::Tensor& t) { return t.to_vector<double>(); }
bool message_contains(const std::exception& e, const std::string& s) {
    return std::string(e.what()).find(s) != std::string::npos;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(autograd_inplace)

BOOST_AUTO_TEST_CASE(add_and_sub_with_alpha_under_no_grad) {
    auto p = f64({1, 2, 3}).requires_grad_();
    xg::NoGradGuard ng;
    p.add_(f64({10, 20, 30}), 0.5);
    BOOST_TEST(values(p) == std::vector<double>({6, 12, 18}), tt::per_element());
    p.sub_(f64({1, 1, 1}));
    BOOST_TEST(values(p) == std::vector<double>({5, 11, 17}), tt::per_element());
    p.sub_(f64({2}, {}), 2.0);  // broadcast scalar
    BOOST_TEST(values(p) == std::vector<double>({1, 7, 13}), tt::per_element());
    BOOST_TEST(p.requires_grad());
    BOOST_TEST(p.is_leaf());
}

BOOST_AUTO_TEST_CASE(mul_zero_fill_and_copy_under_no_grad) {
    auto p = xg::tensor({1, 2, 3, 4}, {2, 2}, xg::f64).requires_grad_();
    xg::NoGradGuard ng;
    p.mul_(f64({2, 3}));  // broadcast over rows
    BOOST_TEST(values(p) == std::vector<double>({2, 6, 6, 12}), tt::per_element());
    p.mul_(0.5);
    BOOST_TEST(values(p) == std::vector<double>({1, 3, 3, 6}), tt::per_element());
    p.fill_(7);
    BOOST_TEST(values(p) == std::vector<double>(4, 7.0), tt::per_element());
    p.zero_();
    BOOST_TEST(values(p) == std::vector<double>(4, 0.0), tt::per_element());
    p.copy_(xg::tensor({1, 2, 3, 4}, {2, 2}));  // float32 source converted to float64
    BOOST_TEST(values(p) == std::vector<double>({1, 2, 3, 4}), tt::per_element());
    BOOST_TEST((p.dtype() == xg::f64));
    p.copy_(p);  // from itself
    BOOST_TEST(values(p) == std::vector<double>({1, 2, 3, 4}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(in_place_update_cannot_grow_the_tensor) {
    auto p = f64({1, 2});
    BOOST_CHECK_THROW(p.add_(xg::tensor({1, 2, 3, 4}, {2, 2}, xg::f64)), xg::ShapeError);
    BOOST_CHECK_THROW(p.copy_(f64({1, 2, 3})), xg::ShapeError);
    BOOST_TEST(values(p) == std::vector<double>({1, 2}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(in_place_on_a_tensor_requiring_grad_with_grad_mode_on_throws) {
    auto p = f64({1, 2}).requires_grad_();
    BOOST_CHECK_EXCEPTION(p.add_(f64({1, 1})), xg::GraphError,
                          [](const xg::GraphError& e) { return message_contains(e, "add_"); });
    BOOST_CHECK_THROW(p.sub_(f64({1, 1})), xg::GraphError);
    BOOST_CHECK_THROW(p.mul_(2.0), xg::GraphError);
    BOOST_CHECK_THROW(p.zero_(), xg::GraphError);
    BOOST_CHECK_THROW(p.fill_(1.0), xg::GraphError);
    BOOST_CHECK_THROW(p.copy_(f64({3, 4})), xg::GraphError);
    BOOST_CHECK_THROW((p * 2.0).mul_(2.0), xg::GraphError);                   // non-leaf too
    BOOST_TEST(values(p) == std::vector<double>({1, 2}), tt::per_element());  // unchanged
    auto c = f64({1, 2});
    c.add_(f64({1, 1}));  // no grad needed: fine with grad mode on
    BOOST_TEST(values(c) == std::vector<double>({2, 3}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(in_place_works_on_integer_tensors) {
    auto i = xg::tensor_i64({1, 2, 3});
    i.add_(xg::tensor_i64({1, 1, 1}), 2);
    BOOST_TEST(i.to_vector<std::int64_t>() == std::vector<std::int64_t>({3, 4, 5}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(each_in_place_update_bumps_the_version) {
    auto p = f64({1, 2});
    const auto v0 = p.array().version();
    p.add_(f64({1, 1}));
    p.mul_(2.0);
    p.zero_();
    BOOST_TEST(p.array().version() == v0 + 3);
    BOOST_TEST(p.detach().array().version() == v0 + 3);  // shared with views of the buffer
}

BOOST_AUTO_TEST_CASE(backward_through_a_saved_input_modified_in_place_throws_naming_the_op) {
    auto x = f64({1, 2});  // data, saved by mul for w's gradient
    auto w = f64({3, 4}).requires_grad_();
    auto loss = xg::sum(x * w);
    x.mul_(10.0);
    BOOST_CHECK_EXCEPTION(loss.backward(), xg::GraphError, [](const xg::GraphError& e) {
        return message_contains(e, "mul") && message_contains(e, "in-place");
    });
    BOOST_TEST(!w.grad().defined());  // no wrong gradient was written
}

BOOST_AUTO_TEST_CASE(backward_after_an_optimizer_step_on_a_saved_parameter_throws) {
    auto x = f64({1, 2}).requires_grad_();
    auto w = f64({3, 4}).requires_grad_();
    auto loss = xg::sum(x * w);  // saves w for x's gradient
    {
        xg::NoGradGuard ng;
        w.sub_(f64({1, 1}), 0.1);
    }
    BOOST_CHECK_THROW(loss.backward(), xg::GraphError);
    // A fresh forward after the step saves the new version and works.
    auto loss2 = xg::sum(x * w);
    loss2.backward();
    BOOST_TEST(values(x.grad()) == std::vector<double>({2.9, 3.9}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(backward_through_a_saved_output_modified_in_place_throws_naming_the_op) {
    auto x = f64({0.5, -0.5}).requires_grad_();
    auto s = xg::sigmoid(x);  // saves its output
    auto loss = xg::sum(s * 2.0);
    {
        xg::NoGradGuard ng;
        s.fill_(0.25);
    }
    BOOST_CHECK_EXCEPTION(loss.backward(), xg::GraphError,
                          [](const xg::GraphError& e) { return message_contains(e, "sigmoid"); });
}

BOOST_AUTO_TEST_CASE(modifying_a_detached_view_is_seen_by_the_version_counter) {
    auto x = f64({1, 2});
    auto w = f64({3, 4}).requires_grad_();
    auto loss = xg::sum(x * w);
    auto view = x.detach();
    view.add_(f64({1, 1}));
    BOOST_TEST(values(x) == std::vector<double>({2, 3}), tt::per_element());  // same buffer
    BOOST_CHECK_THROW(loss.backward(), xg::GraphError);
}

BOOST_AUTO_TEST_CASE(in_place_update_of_a_tensor_not_saved_does_not_disturb_backward) {
    auto x = f64({1, 2}).requires_grad_();
    auto unrelated = f64({5, 5});
    auto loss = xg::sum(x + x);  // add saves nothing
    unrelated.zero_();
    loss.backward();
    BOOST_TEST(values(x.grad()) == std::vector<double>({2, 2}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(optimizer_step_on_gradients_leaves_other_gradients_alone) {
    auto w = f64({1, 2}).requires_grad_();
    auto b = f64({3}, {}).requires_grad_();
    xg::sum(w * 2.0 + b).backward();
    {
        xg::NoGradGuard ng;
        w.sub_(w.grad(), 0.1);
        b.sub_(b.grad(), 0.1);
        w.grad().zero_();
    }
    BOOST_TEST(values(w)[0] == 0.8, tt::tolerance(1e-15));
    BOOST_TEST(values(w)[1] == 1.8, tt::tolerance(1e-15));
    BOOST_TEST(b.item<double>() == 3 - 0.2);
    BOOST_TEST(b.grad().item<double>() == 2.0);
}

BOOST_AUTO_TEST_SUITE_END()

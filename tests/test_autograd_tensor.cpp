// The Tensor handle's autograd state: requires_grad, grad, detach, leaves, retain_grad, grad mode.
#include <boost/test/unit_test.hpp>
#include <sstream>
#include <thread>
#include <xgrad/xgrad.hpp>

namespace {
xg::Tensor f64(std::initializer_list<double> v, xg::Shape s = {-1}) { return xg::tensor(v, s, xg::f64); }
std::vector<double> values(const xg::Tensor& t) { return t.to_vector<double>(); }
}  // namespace

BOOST_AUTO_TEST_SUITE(autograd_tensor)

BOOST_AUTO_TEST_CASE(requires_grad_sets_and_clears_the_flag_on_a_leaf) {
    auto x = f64({1, 2});
    BOOST_TEST(!x.requires_grad());
    BOOST_TEST(&x.requires_grad_() == &x);  // chainable
    BOOST_TEST(x.requires_grad());
    x.requires_grad_(false);
    BOOST_TEST(!x.requires_grad());
    BOOST_TEST(xg::Tensor(x.array(), true).requires_grad());
}

BOOST_AUTO_TEST_CASE(requires_grad_on_an_integer_tensor_throws_dtype_error) {
    auto i = xg::tensor_i64({1, 2, 3});
    BOOST_CHECK_THROW(i.requires_grad_(), xg::DtypeError);
    try {
        i.requires_grad_();
    } catch (const xg::DtypeError& e) {
        BOOST_TEST(std::string(e.what()).find("int64") != std::string::npos);
    }
    BOOST_TEST(!i.requires_grad());
    i.requires_grad_(false);  // turning it off is fine
}

BOOST_AUTO_TEST_CASE(turning_requires_grad_off_on_a_non_leaf_throws_graph_error) {
    auto x = f64({1, 2}).requires_grad_();
    auto y = x * 2.0;
    BOOST_CHECK_THROW(y.requires_grad_(false), xg::GraphError);
    BOOST_CHECK_NO_THROW(y.requires_grad_(true));  // already requires grad
    BOOST_TEST(y.requires_grad());
}

BOOST_AUTO_TEST_CASE(ops_on_inputs_without_requires_grad_record_nothing) {
    auto x = f64({1, 2});
    auto y = xg::exp(x) * 3.0;
    BOOST_TEST(!y.requires_grad());
    BOOST_TEST(y.is_leaf());
    BOOST_TEST(y.grad_fn() == nullptr);
    BOOST_CHECK_THROW(y.backward(xg::ones_like(y)), xg::GraphError);
}

BOOST_AUTO_TEST_CASE(grad_is_undefined_until_backward_then_holds_the_gradient) {
    auto x = f64({1, 2, 3}).requires_grad_();
    BOOST_TEST(!x.grad().defined());
    xg::sum(x * x).backward();  // d/dx sum(x^2) = 2x
    BOOST_TEST(values(x.grad()) == std::vector<double>({2, 4, 6}), boost::test_tools::per_element());
    BOOST_TEST((x.grad().dtype() == xg::f64));
    BOOST_TEST(!x.grad().requires_grad());
}

BOOST_AUTO_TEST_CASE(zero_grad_clears_the_gradient) {
    auto x = f64({1, 2}).requires_grad_();
    xg::sum(x).backward();
    BOOST_TEST(x.grad().defined());
    x.zero_grad();
    BOOST_TEST(!x.grad().defined());
    xg::sum(x * 3.0).backward();  // starts again from nothing
    BOOST_TEST(values(x.grad()) == std::vector<double>({3, 3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(set_grad_checks_shape_and_dtype) {
    auto x = f64({1, 2}).requires_grad_();
    x.set_grad(f64({5, 6}));
    BOOST_TEST(values(x.grad()) == std::vector<double>({5, 6}), boost::test_tools::per_element());
    BOOST_CHECK_THROW(x.set_grad(f64({1, 2, 3})), xg::ShapeError);
    BOOST_CHECK_THROW(x.set_grad(xg::tensor({1, 2})), xg::DtypeError);  // float32 for a float64 tensor
    x.set_grad(xg::Tensor());
    BOOST_TEST(!x.grad().defined());
}

BOOST_AUTO_TEST_CASE(detach_shares_the_buffer_but_leaves_the_graph) {
    auto x = f64({1, 2}).requires_grad_();
    auto y = x * 2.0;
    auto d = y.detach();
    BOOST_TEST(d.is_leaf());
    BOOST_TEST(!d.requires_grad());
    BOOST_TEST(d.array().shares_storage(y.array()));
    BOOST_TEST(values(d) == std::vector<double>({2, 4}), boost::test_tools::per_element());
    // Nothing flows through the detached value: z depends on x only through the first factor.
    auto z = xg::sum(y * d);  // dz/dx = 2 d = [4, 8]
    z.backward();
    BOOST_TEST(values(x.grad()) == std::vector<double>({4, 8}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(is_leaf_is_true_for_created_tensors_and_false_for_op_results) {
    auto x = f64({1}).requires_grad_();
    auto c = f64({2});
    BOOST_TEST(x.is_leaf());
    BOOST_TEST(c.is_leaf());
    BOOST_TEST(!(x + c).is_leaf());
    BOOST_TEST((c + c).is_leaf());  // nothing recorded
    BOOST_TEST((x + c).detach().is_leaf());
}

BOOST_AUTO_TEST_CASE(non_leaf_gradients_are_kept_only_with_retain_grad) {
    auto x = f64({1, 2}).requires_grad_();
    auto h = x * 3.0;
    auto k = x * 5.0;
    h.retain_grad();
    BOOST_TEST(h.retains_grad());
    BOOST_TEST(!k.retains_grad());
    xg::sum(h * h + k).backward();  // d/dh = 2h = [6, 12]
    BOOST_TEST(values(h.grad()) == std::vector<double>({6, 12}), boost::test_tools::per_element());
    BOOST_TEST(!k.grad().defined());
    BOOST_TEST(values(x.grad()) == std::vector<double>({6 * 3 + 5, 12 * 3 + 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(retained_gradients_accumulate_and_do_not_alias_leaf_gradients) {
    auto x = f64({1, 2}).requires_grad_();
    auto h = x + 0.0;
    h.retain_grad();
    xg::sum(h * 2.0).backward(xg::Tensor(), true);
    xg::sum(h * 2.0).backward();
    BOOST_TEST(values(h.grad()) == std::vector<double>({4, 4}), boost::test_tools::per_element());
    BOOST_TEST(!h.grad().array().shares_storage(x.grad().array()));
}

BOOST_AUTO_TEST_CASE(retain_grad_on_a_tensor_without_grad_throws) {
    auto c = f64({1});
    BOOST_CHECK_THROW(c.retain_grad(), xg::GraphError);
}

BOOST_AUTO_TEST_CASE(grad_fn_name_names_the_op_that_produced_the_tensor) {
    auto x = f64({1, 2}).requires_grad_();
    BOOST_TEST(x.grad_fn_name() == "");
    BOOST_TEST((x * x).grad_fn_name() == "mul");
    BOOST_TEST(xg::sigmoid(x).grad_fn_name() == "sigmoid");
    BOOST_TEST(xg::sum(x).grad_fn_name() == "sum");
    BOOST_TEST(xg::sum(x).grad_fn()->name() == "sum");
    BOOST_TEST(xg::sum(x).grad_fn()->inputs().size() == 1u);
}

BOOST_AUTO_TEST_CASE(no_grad_guard_stops_recording_and_restores_the_previous_mode) {
    auto x = f64({1}).requires_grad_();
    BOOST_TEST(xg::is_grad_enabled());
    {
        xg::NoGradGuard ng;
        BOOST_TEST(!xg::is_grad_enabled());
        auto y = x * 2.0;
        BOOST_TEST(!y.requires_grad());
        BOOST_TEST(y.is_leaf());
        {
            xg::EnableGradGuard eg;
            BOOST_TEST(xg::is_grad_enabled());
            BOOST_TEST((x * 2.0).requires_grad());
        }
        BOOST_TEST(!xg::is_grad_enabled());
    }
    BOOST_TEST(xg::is_grad_enabled());
    BOOST_TEST((x * 2.0).requires_grad());
}

BOOST_AUTO_TEST_CASE(grad_mode_is_thread_local) {
    auto x = f64({1}).requires_grad_();
    xg::NoGradGuard ng;  // this thread only
    bool other_enabled = false, other_records = false;
    std::thread t([&] {
        other_enabled = xg::is_grad_enabled();
        other_records = (x * 2.0).requires_grad();
        xg::set_grad_enabled(false);  // does not leak back into the main thread
    });
    t.join();
    BOOST_TEST(other_enabled);
    BOOST_TEST(other_records);
    BOOST_TEST(!xg::is_grad_enabled());
    {
        xg::EnableGradGuard eg;
        bool other_after = true;
        std::thread t2([&] {
            xg::NoGradGuard inner;
            other_after = xg::is_grad_enabled();
        });
        t2.join();
        BOOST_TEST(!other_after);
        BOOST_TEST(xg::is_grad_enabled());  // the other thread's guard did not touch ours
    }
}

BOOST_AUTO_TEST_CASE(printing_shows_values_shape_dtype_and_grad_fn) {
    auto x = f64({1.5, -2}).requires_grad_();
    std::ostringstream a, b;
    a << x;
    b << x * 2.0;
    BOOST_TEST(a.str() == "tensor([1.5, -2], shape=[2], dtype=float64, requires_grad=true)");
    BOOST_TEST(b.str() == "tensor([3, -4], shape=[2], dtype=float64, grad_fn=<mul>)");
}

BOOST_AUTO_TEST_CASE(undefined_tensors_throw_value_error) {
    xg::Tensor u;
    BOOST_TEST(!u.defined());
    BOOST_TEST(!u.requires_grad());
    BOOST_CHECK_THROW(u.grad(), xg::ValueError);
    BOOST_CHECK_THROW(u.requires_grad_(), xg::ValueError);
    BOOST_CHECK_THROW(u.backward(), xg::ValueError);
    BOOST_CHECK_THROW(u.is_leaf(), xg::ValueError);
}

BOOST_AUTO_TEST_SUITE_END()

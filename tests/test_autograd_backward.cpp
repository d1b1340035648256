// Tensor::backward: arguments, errors, accumulation, ordering, hooks, long chains, teardown.
#include <malloc.h>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <memory>
#include <thread>
#include <xgrad/xgrad.hpp>

namespace {
using Tensors = std::vector<xg::Tensor>;
xg::Tensor f64(std::initializer_list<double> v, xg::Shape s = {-1}) { return xg::tensor(v, s, xg::f64); }
std::vector<double> values(const xg::Tensor& t) { return t.to_vector<double>(); }
bool message_contains(const std::exception& e, const std::string& s) {
    return std::string(e.what()).find(s) != std::string::npos;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(autograd_backward)

BOOST_AUTO_TEST_CASE(scalar_root_defaults_grad_output_to_one) {
    auto x = f64({3}, {}).requires_grad_();
    auto y = x * x * x;  // dy/dx = 3x^2 = 27
    y.backward();
    BOOST_TEST(x.grad().item<double>() == 27.0);
}

BOOST_AUTO_TEST_CASE(grad_output_weights_a_non_scalar_root) {
    auto x = f64({1, 2, 3}).requires_grad_();
    auto y = x * x;  // dy_i/dx_i = 2 x_i
    y.backward(f64({1, 10, 100}));
    BOOST_TEST(values(x.grad()) == std::vector<double>({2, 40, 600}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(grad_output_of_another_dtype_is_converted) {
    auto x = xg::tensor({1, 2}).requires_grad_();  // float32
    (x * 3.0).backward(f64({1, 2}));
    BOOST_TEST((x.grad().dtype() == xg::f32));
    BOOST_TEST(x.grad().to_vector<float>() == std::vector<float>({3, 6}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(non_scalar_root_without_grad_output_throws_graph_error_naming_the_op) {
    auto x = f64({1, 2}).requires_grad_();
    auto y = xg::exp(x);
    BOOST_CHECK_EXCEPTION(y.backward(), xg::GraphError, [](const xg::GraphError& e) {
        return message_contains(e, "exp") && message_contains(e, "[2]");
    });
}

BOOST_AUTO_TEST_CASE(grad_output_of_the_wrong_shape_throws_shape_error) {
    auto x = f64({1, 2}).requires_grad_();
    BOOST_CHECK_THROW((x * 2.0).backward(f64({1, 2, 3})), xg::ShapeError);
}

BOOST_AUTO_TEST_CASE(backward_on_a_tensor_without_grad_throws_graph_error) {
    BOOST_CHECK_THROW(f64({1}, {}).backward(), xg::GraphError);
}

BOOST_AUTO_TEST_CASE(second_backward_through_a_freed_graph_throws_graph_error_naming_the_op) {
    auto x = f64({0.5, -1}).requires_grad_();
    auto s = xg::sigmoid(x);
    s.backward(xg::ones_like(s));
    BOOST_CHECK_EXCEPTION(s.backward(xg::ones_like(s)), xg::GraphError, [](const xg::GraphError& e) {
        return message_contains(e, "sigmoid") && message_contains(e, "retain_graph");
    });
    // Through a new root on top of the freed part, the freed op is named too.
    BOOST_CHECK_EXCEPTION((s * 2.0).backward(xg::ones_like(s)), xg::GraphError,
                          [](const xg::GraphError& e) { return message_contains(e, "sigmoid"); });
    // The first freed op that the second pass reaches is the one named.
    auto loss = xg::sum(xg::exp(x));
    loss.backward();
    BOOST_CHECK_EXCEPTION(loss.backward(), xg::GraphError,
                          [](const xg::GraphError& e) { return message_contains(e, "sum:"); });
}

BOOST_AUTO_TEST_CASE(retain_graph_allows_a_second_backward) {
    auto x = f64({0.5, -1}).requires_grad_();
    auto loss = xg::sum(xg::sigmoid(x) * x);
    loss.backward(xg::Tensor(), true);
    const auto first = values(x.grad());
    loss.backward();
    const auto twice = values(x.grad());
    for (std::size_t i = 0; i < first.size(); ++i) BOOST_TEST(twice[i] == 2 * first[i]);
    BOOST_CHECK_THROW(loss.backward(), xg::GraphError);  // the second call did not retain it
}

BOOST_AUTO_TEST_CASE(a_pass_that_throws_midway_leaves_no_stale_gradient_behind) {
    auto x = f64({1, 2}).requires_grad_();
    auto c = f64({4, 5});
    auto p = xg::exp(x) * c;  // its rule will fail: c is modified below
    auto q = x * 3.0;         // newer: runs first and already sends x a gradient
    auto loss = xg::sum(p + q);
    c.zero_();
    BOOST_CHECK_THROW(loss.backward(), xg::GraphError);
    BOOST_TEST(!x.grad().defined());
    xg::sum(x * 5.0).backward();  // only this pass reaches x.grad
    BOOST_TEST(values(x.grad()) == std::vector<double>({5, 5}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ops_whose_rule_holds_nothing_can_run_backward_twice_as_in_pytorch) {
    auto x = f64({1, 2}).requires_grad_();
    auto y = -(x + x) - x;  // add, neg and sub keep no state for their rules
    y.backward(f64({1, 1}));
    y.backward(f64({1, 1}));
    BOOST_TEST(values(x.grad()) == std::vector<double>({-6, -6}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(leaf_gradients_accumulate_across_backward_calls) {
    auto x = f64({1, 2}).requires_grad_();
    xg::sum(x * x).backward();       // 2x
    xg::sum(x * 3.0).backward();     // + 3
    xg::sum(xg::exp(x)).backward();  // + e^x
    const auto g = values(x.grad());
    BOOST_TEST(g[0] == 2 + 3 + std::exp(1.0), boost::test_tools::tolerance(1e-14));
    BOOST_TEST(g[1] == 4 + 3 + std::exp(2.0), boost::test_tools::tolerance(1e-14));
}

BOOST_AUTO_TEST_CASE(backward_of_a_leaf_sets_its_own_gradient) {
    auto x = f64({1, 2}).requires_grad_();
    auto go = f64({5, 7});
    x.backward(go);
    BOOST_TEST(values(x.grad()) == std::vector<double>({5, 7}), boost::test_tools::per_element());
    BOOST_TEST(!x.grad().array().shares_storage(go.array()));  // not an alias of the caller's tensor
}

BOOST_AUTO_TEST_CASE(expression_using_one_node_twice_by_hand) {
    // h = tanh(w x) is used twice: f = sum(h*h + 3h), so df/dx = (2h + 3)(1 - h^2) w and
    // df/dw = sum((2h + 3)(1 - h^2) x). h's rule must run once, with both contributions summed.
    const double xs[2] = {1.5, -0.5}, wv = 0.7;
    auto x = f64({xs[0], xs[1]}).requires_grad_();
    auto w = f64({wv}, {}).requires_grad_();
    auto h = xg::tanh(x * w);
    int hook_calls = 0;
    h.register_hook([&](const xg::Tensor& g) {
        ++hook_calls;
        return xg::Tensor();
    });
    auto f = xg::sum(h * h + h * 3.0);
    f.backward();
    BOOST_TEST(hook_calls == 1);
    double dw = 0;
    for (int i = 0; i < 2; ++i) {
        const double hv = std::tanh(wv * xs[i]), common = (2 * hv + 3) * (1 - hv * hv);
        BOOST_TEST(values(x.grad())[i] == common * wv, boost::test_tools::tolerance(1e-13));
        dw += common * xs[i];
    }
    BOOST_TEST(w.grad().item<double>() == dw, boost::test_tools::tolerance(1e-13));
    BOOST_TEST(f.item<double>() == std::pow(std::tanh(1.05), 2) + 3 * std::tanh(1.05) + std::pow(std::tanh(-0.35), 2) +
                                       3 * std::tanh(-0.35),
               boost::test_tools::tolerance(1e-13));
}

BOOST_AUTO_TEST_CASE(diamond_with_paths_of_different_length) {
    // x -> a = 2x -> b = a^2 -> c = b * a (a reaches c directly and through b): c = 4x^2 * 2x = 8x^3.
    auto x = f64({1.5}, {}).requires_grad_();
    auto a = x * 2.0;
    auto b = a * a;
    auto c = b * a;
    c.backward();
    BOOST_TEST(x.grad().item<double>() == 24 * 1.5 * 1.5, boost::test_tools::tolerance(1e-14));
}

BOOST_AUTO_TEST_CASE(broadcast_gradients_are_summed_back_to_the_input_shape) {
    auto x = xg::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, xg::f64).requires_grad_();
    auto b = f64({10, 20, 30}).requires_grad_();
    auto s = f64({2}, {}).requires_grad_();
    xg::sum((x + b) * s).backward();
    BOOST_TEST(values(b.grad()) == std::vector<double>({4, 4, 4}), boost::test_tools::per_element());
    BOOST_TEST(s.grad().item<double>() == 21 + 2 * 60);
    BOOST_TEST((b.grad().shape() == xg::Shape{3}));
    BOOST_TEST((s.grad().shape() == xg::Shape{}));
}

BOOST_AUTO_TEST_CASE(mixed_precision_gradients_come_back_in_each_leaf_dtype) {
    auto a = xg::tensor({1, 2});  // float32
    a.requires_grad_();
    auto b = f64({3, 4}).requires_grad_();
    auto y = xg::sum(a * b);  // promoted to float64
    BOOST_TEST((y.dtype() == xg::f64));
    y.backward();
    BOOST_TEST((a.grad().dtype() == xg::f32));
    BOOST_TEST((b.grad().dtype() == xg::f64));
    BOOST_TEST(a.grad().to_vector<double>() == std::vector<double>({3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(leaf_gradients_never_share_a_buffer) {
    // add's rule hands the same gradient to both inputs; each leaf must still get its own .grad.
    auto x = f64({1, 2}).requires_grad_();
    auto y = f64({3, 4}).requires_grad_();
    (x + y).backward(f64({1, 1}));
    BOOST_TEST(!x.grad().array().shares_storage(y.grad().array()));
    {
        xg::NoGradGuard ng;
        x.grad().mul_(5.0);  // e.g. gradient clipping
    }
    BOOST_TEST(values(y.grad()) == std::vector<double>({1, 1}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(backward_with_create_graph_gives_a_differentiable_gradient) {
    auto x = f64({2}, {}).requires_grad_();
    auto y = x * x * x;  // y' = 3x^2, y'' = 6x
    y.backward(xg::Tensor(), false, true);
    auto g = x.grad();
    BOOST_TEST(g.item<double>() == 12.0);
    BOOST_TEST(g.requires_grad());
    BOOST_TEST(!g.is_leaf());
    const auto h = xg::grad({g}, {x});
    BOOST_TEST(h[0].item<double>() == 12.0);  // 6x
    x.zero_grad();
}

BOOST_AUTO_TEST_CASE(hook_on_a_leaf_sees_the_gradient_and_may_replace_it) {
    auto x = f64({1, 2}).requires_grad_();
    std::vector<double> seen;
    const auto index = x.register_hook([&](const xg::Tensor& g) {
        seen = values(g);
        return g * 10.0;
    });
    BOOST_TEST(index == 0u);
    xg::sum(x * x).backward();
    BOOST_TEST(seen == std::vector<double>({2, 4}), boost::test_tools::per_element());
    BOOST_TEST(values(x.grad()) == std::vector<double>({20, 40}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(hook_on_a_non_leaf_replaces_the_gradient_flowing_further) {
    auto x = f64({1, 2}).requires_grad_();
    auto h = x * 3.0;
    std::vector<double> seen;
    h.register_hook([&](const xg::Tensor& g) {
        seen = values(g);
        return xg::Tensor();  // undefined: keep the gradient
    });
    h.register_hook([](const xg::Tensor& g) { return g * 0.5; });  // hooks run in order
    xg::sum(h * h).backward();                                     // dL/dh = 2h = [6, 12]
    BOOST_TEST(seen == std::vector<double>({6, 12}), boost::test_tools::per_element());
    BOOST_TEST(values(x.grad()) == std::vector<double>({9, 18}), boost::test_tools::per_element());  // 0.5 * 2h * 3
}

BOOST_AUTO_TEST_CASE(hook_returning_a_wrong_shape_throws_graph_error) {
    auto x = f64({1, 2}).requires_grad_();
    x.register_hook([](const xg::Tensor&) { return f64({1, 2, 3}); });
    BOOST_CHECK_THROW(xg::sum(x).backward(), xg::GraphError);
    auto c = f64({1});
    BOOST_CHECK_THROW(c.register_hook([](const xg::Tensor& g) { return g; }), xg::GraphError);
}

BOOST_AUTO_TEST_CASE(hooks_also_run_for_xg_grad) {
    auto x = f64({1, 2}).requires_grad_();
    x.register_hook([](const xg::Tensor& g) { return g * 2.0; });
    const auto g = xg::grad({xg::sum(x * x)}, {x});
    BOOST_TEST(values(g[0]) == std::vector<double>({4, 8}), boost::test_tools::per_element());
    BOOST_TEST(!x.grad().defined());  // grad() never writes .grad
}

BOOST_AUTO_TEST_CASE(a_million_node_chain_runs_backward_and_is_destroyed_without_stack_overflow) {
    // x = |x| a million times from x_0 = 1: x_N = 1 and dx_N/dx_0 = prod sign(x_k) = 1. abs keeps
    // its input for the rule and retain_graph keeps the rules, so teardown goes through edges and
    // through saved tensors inside rules. Recursive ordering or teardown would overflow the stack.
    constexpr int nodes = 1000000;
    auto x0 = xg::scalar(1.0).requires_grad_();
    std::weak_ptr<xg::Node> first;
    {
        xg::Tensor x = x0;
        for (int i = 0; i < nodes; ++i) {
            x = xg::abs(x);
            if (i == 0) first = x.grad_fn();
        }
        BOOST_TEST(x.item<float>() == 1.0f);
        x.backward(xg::Tensor(), true);
        BOOST_TEST(!first.expired());
    }
    BOOST_TEST(first.expired());
    BOOST_TEST(x0.grad().item<float>() == 1.0f);
}

BOOST_AUTO_TEST_CASE(grad_on_a_long_chain_marks_needed_nodes_without_recursion) {
    // xg::grad walks the graph once before the pass (to skip branches that lead to no input).
    auto x = xg::scalar(1.0, xg::f64).requires_grad_();
    auto other = xg::scalar(2.0, xg::f64).requires_grad_();
    xg::Tensor y = x;
    for (int i = 0; i < 40000; ++i) y = -y + other * 0.0;  // 120,000 nodes
    const auto g = xg::grad({y}, {x});
    BOOST_TEST(g[0].item<double>() == 1.0);
    BOOST_TEST(!other.grad().defined());
}

BOOST_AUTO_TEST_CASE(graph_is_freed_when_dropped_no_reference_cycles) {
    std::weak_ptr<xg::Node> sig_node, sum_node;
    std::weak_ptr<xg::TensorImpl> sig_out, x_impl;
    {
        auto x = f64({0.3, -0.2}).requires_grad_();
        auto w = f64({1.5, 2}).requires_grad_();
        auto s = xg::sigmoid(x * w);  // sigmoid saves its output
        auto loss = xg::sum(s);
        sig_node = s.grad_fn();
        sum_node = loss.grad_fn();
        sig_out = s.impl();
        x_impl = x.impl();
        loss.backward();
    }
    BOOST_TEST(sig_node.expired());
    BOOST_TEST(sum_node.expired());
    BOOST_TEST(sig_out.expired());
    BOOST_TEST(x_impl.expired());
}

BOOST_AUTO_TEST_CASE(no_reference_cycle_with_create_graph_gradients_stored_in_leaves) {
    // x.grad holds a graph that uses x itself (d/dx sigmoid(x w) depends on x and w).
    std::weak_ptr<xg::Node> grad_node, fwd_node;
    std::weak_ptr<xg::TensorImpl> x_impl, w_impl, grad_impl;
    {
        auto x = f64({0.3, -0.2}).requires_grad_();
        auto w = f64({1.5, 2}).requires_grad_();
        auto s = xg::sigmoid(x * w);
        fwd_node = s.grad_fn();
        xg::sum(s * x).backward(xg::Tensor(), false, true);
        BOOST_TEST(x.grad().requires_grad());
        grad_node = x.grad().grad_fn();
        grad_impl = x.grad().impl();
        x_impl = x.impl();
        w_impl = w.impl();
        // Second order through the stored gradient works while everything is alive.
        const auto gg = xg::grad({xg::sum(x.grad())}, {w});
        BOOST_TEST(gg[0].defined());
    }
    BOOST_TEST(grad_node.expired());
    BOOST_TEST(fwd_node.expired());
    BOOST_TEST(grad_impl.expired());
    BOOST_TEST(x_impl.expired());
    BOOST_TEST(w_impl.expired());
}

BOOST_AUTO_TEST_CASE(no_reference_cycle_with_grad_create_graph) {
    std::weak_ptr<xg::Node> g_node, h_node;
    std::weak_ptr<xg::TensorImpl> x_impl;
    {
        auto x = f64({0.3, -0.2}).requires_grad_();
        auto y = xg::sum(xg::sigmoid(x) * xg::tanh(x));
        auto g = xg::grad({y}, {x}, {}, false, true)[0];
        auto h = xg::grad({xg::sum(g)}, {x}, {}, false, true)[0];
        g_node = g.grad_fn();
        h_node = h.grad_fn();
        x_impl = x.impl();
        BOOST_TEST(!g_node.expired());
        BOOST_TEST(!h_node.expired());
    }
    BOOST_TEST(g_node.expired());
    BOOST_TEST(h_node.expired());
    BOOST_TEST(x_impl.expired());
}

BOOST_AUTO_TEST_CASE(saved_output_survives_its_handle_being_dropped) {
    // sigmoid keeps its output for the rule; the output handle may die before backward.
    auto x = f64({0.3, -1.2}).requires_grad_();
    xg::Tensor loss;
    std::weak_ptr<xg::TensorImpl> out;
    {
        auto s = xg::sigmoid(x);
        out = s.impl();
        loss = xg::sum(s * 1.0);
    }
    loss.backward();
    for (int i = 0; i < 2; ++i) {
        const double v = values(x)[i], s = 1 / (1 + std::exp(-v));
        BOOST_TEST(values(x.grad())[i] == s * (1 - s), boost::test_tools::tolerance(1e-14));
    }
    loss = xg::Tensor();
    BOOST_TEST(out.expired());
}

// Activations that save their output (relu saves a bit mask instead), each with its derivative as a function of y
// (compared in absolute terms: 1 - y^2 cancels near |y| = 1, and the kernel may fuse it).
struct SavedOutputActivation {
    const char* name;
    xg::Tensor (*op)(const xg::Tensor&);
    double (*derivative_of_output)(double y);
};
const SavedOutputActivation kSavedOutputActivations[] = {
    {"sigmoid", [](const xg::Tensor& x) { return xg::sigmoid(x); }, [](double y) { return y * (1 - y); }},
    {"tanh", [](const xg::Tensor& x) { return xg::tanh(x); }, [](double y) { return 1 - y * y; }},
    {"elu(alpha 0.5)", [](const xg::Tensor& x) { return xg::elu(x, 0.5); },
     [](double y) { return y > 0 ? 1.0 : y + 0.5; }},
};

xg::Tensor sweep(std::int64_t n) { return xg::linspace(-4, 4, n, xg::f64); }

BOOST_AUTO_TEST_CASE(a_dropped_saved_output_receives_its_gradient_in_place) {
    // When nothing but the node holds the output any more, the node's last backward writes the
    // gradient into the output's buffer (no new buffer), and that gradient becomes x.grad.
    for (const auto& act : kSavedOutputActivations) {
        BOOST_TEST_CONTEXT(act.name) {
            auto x = sweep(1001).requires_grad_();
            xg::Tensor loss;
            const void* output_buffer = nullptr;
            std::vector<double> y;
            {
                auto out = act.op(x);
                output_buffer = out.array().raw();
                y = values(out);
                loss = xg::sum(out * 1.0) * 3.0;  // a dense gradient of 3 reaches the activation
            }
            loss.backward();
            BOOST_TEST(x.grad().array().raw() == output_buffer);
            const auto dx = values(x.grad());
            for (std::size_t i = 0; i < dx.size(); ++i)
                BOOST_TEST(std::abs(dx[i] - 3 * act.derivative_of_output(y[i])) <= 1e-15);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_saved_output_that_is_still_visible_is_never_overwritten) {
    for (const auto& act : kSavedOutputActivations) {
        BOOST_TEST_CONTEXT(act.name) {
            auto x = sweep(1001).requires_grad_();
            // The output itself alive, or only a view of it.
            auto out = act.op(x);
            const auto y = values(out);
            xg::sum(out).backward();
            BOOST_TEST(values(out) == y, boost::test_tools::per_element());
            BOOST_TEST(x.grad().array().raw() != out.array().raw());

            x.zero_grad();
            xg::Tensor view, loss;
            {
                auto out2 = act.op(x);
                view = xg::reshape(out2, {7, 143});
                loss = xg::sum(out2);
            }
            loss.backward();
            BOOST_TEST(values(view) == y, boost::test_tools::per_element());
            const auto dx = values(x.grad());
            for (std::size_t i = 0; i < dx.size(); ++i)
                BOOST_TEST(std::abs(dx[i] - act.derivative_of_output(y[i])) <= 1e-15);
        }
    }
}

BOOST_AUTO_TEST_CASE(retain_graph_keeps_a_dropped_saved_output_intact_for_the_next_backward) {
    for (const auto& act : kSavedOutputActivations) {
        BOOST_TEST_CONTEXT(act.name) {
            auto x = sweep(1001).requires_grad_();
            auto loss = xg::sum(act.op(x));
            loss.backward(xg::Tensor(), true);
            const auto first = values(x.grad());
            loss.backward();  // the last use: may write in place
            const auto twice = values(x.grad());
            for (std::size_t i = 0; i < first.size(); ++i) BOOST_TEST(twice[i] == 2 * first[i]);
            const auto y = values(act.op(x));
            for (std::size_t i = 0; i < first.size(); ++i)
                BOOST_TEST(std::abs(first[i] - act.derivative_of_output(y[i])) <= 1e-15);
        }
    }
}

// The gradient of a plain sum is a uniform one: on the node's last use, an activation that saved
// f'(x) hands that buffer over as the gradient. It must equal the gradient computed as a product
// with a dense gradient of ones, bit for bit, and the closed form of silu'; survive accumulation
// into x.grad (which then owns the buffer); and never be handed over while the graph is retained.
BOOST_AUTO_TEST_CASE(a_saved_derivative_handed_over_as_the_gradient_of_a_sum) {
    for (const xg::Dtype dtype : {xg::f32, xg::f64}) {
        const std::int64_t n = 70001;
        auto x = xg::linspace(-6, 6, n, dtype).requires_grad_();
        const auto ones = xg::tensor(std::vector<double>(n, 1.0), {n}, dtype);  // dense, not uniform
        const auto silu_d = values(xg::grad({xg::silu(x)}, {x}, {ones})[0]);
        const auto gelu_d = values(xg::grad({xg::gelu(x)}, {x}, {ones})[0]);
        const auto xs = values(x);
        const double tolerance = dtype == xg::f32 ? 1e-6 : 1e-14;
        for (std::size_t i = 0; i < xs.size(); ++i) {
            const double s = 1 / (1 + std::exp(-xs[i]));
            BOOST_TEST(std::abs(silu_d[i] - s * (1 + xs[i] * (1 - s))) <= tolerance);
        }
        auto in_dtype = [dtype](double v) { return dtype == xg::f32 ? static_cast<double>(static_cast<float>(v)) : v; };
        auto loss = xg::sum(xg::silu(x));
        std::vector<double> accumulated(xs.size(), 0.0);
        for (int k = 1; k <= 3; ++k) {  // retained: the node keeps its buffer, x.grad accumulates
            loss.backward(xg::Tensor(), true);
            const auto g = values(x.grad());
            for (std::size_t i = 0; i < g.size(); ++i) {
                accumulated[i] = in_dtype(accumulated[i] + silu_d[i]);
                if (i % 97 == 0) BOOST_TEST(g[i] == accumulated[i]);
                accumulated[i] *= 2;
            }
            x.grad().mul_(2.0);  // in place: must not reach the saved derivative of the retained graph
        }
        x.zero_grad();
        loss.backward();  // the last use: x.grad receives the saved f'(x) itself
        BOOST_TEST(values(x.grad()) == silu_d, boost::test_tools::per_element());
        xg::sum(xg::gelu(x)).backward();  // a second handed-over buffer is added to the first
        const auto both = values(x.grad());
        for (std::size_t i = 0; i < both.size(); ++i) {
            BOOST_TEST(both[i] == in_dtype(silu_d[i] + gelu_d[i]));
        }
        // Two uses of one input: both gradients are handed over and summed.
        x.zero_grad();
        (xg::sum(xg::silu(x)) + xg::sum(xg::silu(x))).backward();
        const auto twice = values(x.grad());
        for (std::size_t i = 0; i < twice.size(); ++i) BOOST_TEST(twice[i] == 2 * silu_d[i]);
        // A uniform gradient other than one (that of a mean) is multiplied in.
        x.zero_grad();
        xg::mean(xg::silu(x)).backward();
        const auto mean_g = values(x.grad());
        for (std::size_t i = 0; i < mean_g.size(); i += 97)
            BOOST_TEST(std::abs(mean_g[i] * n - silu_d[i]) <= 1e-4 * (1 + std::abs(silu_d[i])));
    }
}

BOOST_AUTO_TEST_CASE(retain_graph_keeps_a_saved_derivative_intact_for_the_next_backward) {
    // gelu's forward also writes gelu'(x), which its last backward may overwrite with the gradient.
    auto x = sweep(1001).requires_grad_();
    auto loss = xg::sum(xg::gelu(x) * 2.0);
    loss.backward(xg::Tensor(), true);
    const auto first = values(x.grad());
    loss.backward();
    const auto twice = values(x.grad());
    const auto xs = values(x);
    for (std::size_t i = 0; i < first.size(); ++i) {
        const double v = xs[i];
        const double exact = 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * std::exp(-v * v / 2) / std::sqrt(2 * M_PI);
        BOOST_TEST(std::abs(first[i] - 2 * exact) <= 1e-14);
        BOOST_TEST(twice[i] == 2 * first[i]);
    }
}

BOOST_AUTO_TEST_CASE(a_chain_of_saved_outputs_keeps_no_heap_memory_after_backward) {
    // In x = tanh(x * w + b) each tanh output is saved by the next mul and handed to its tanh
    // node when that mul is released during backward. Whatever the handover allocates must be
    // freed when the tanh node has run, not when the graph dies: 10,000 nodes' worth kept on the
    // malloc heap until then (and trimmed after every pass) made backward of long chains slower.
    auto w = xg::full({1}, 0.5).requires_grad_();
    auto b = xg::full({1}, 0.1).requires_grad_();
    xg::Tensor x = xg::full({1}, 0.3);
    for (int i = 0; i < 10000; ++i) x = xg::tanh(x * w + b);
    const xg::Tensor loss = xg::sum(x);
    const std::size_t before = mallinfo2().uordblks;
    loss.backward();  // the graph stays alive: loss and x still hold it
    const std::size_t after = mallinfo2().uordblks;
    BOOST_TEST(after < before + 256 * 1024, "malloc'd bytes grew by " << (after - before) << " over 10,000 steps");
    BOOST_TEST(w.grad().defined());
}

BOOST_AUTO_TEST_CASE(a_dropped_leaf_receives_nothing_and_does_not_break_backward) {
    auto x = f64({1, 2}).requires_grad_();
    xg::Tensor y;
    {
        auto w = f64({3, 4}).requires_grad_();
        y = xg::sum(x * w);
    }
    y.backward();  // w's gradient has nowhere to go
    BOOST_TEST(values(x.grad()) == std::vector<double>({3, 4}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(independent_graphs_run_backward_concurrently_on_two_threads) {
    auto work = [](double v, double* out) {
        auto x = f64({v}, {}).requires_grad_();
        xg::Tensor y = x;
        for (int i = 0; i < 2000; ++i) y = xg::sin(y) + x;
        y.backward();
        *out = x.grad().item<double>();
    };
    double a = 0, b = 0, a_ref = 0, b_ref = 0;
    work(0.3, &a_ref);
    work(0.7, &b_ref);
    std::thread t1(work, 0.3, &a), t2(work, 0.7, &b);
    t1.join();
    t2.join();
    BOOST_TEST(a == a_ref);
    BOOST_TEST(b == b_ref);
}

BOOST_AUTO_TEST_SUITE_END()

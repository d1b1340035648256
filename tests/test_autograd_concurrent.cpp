// Backward passes that run independent heavy branches concurrently (set_concurrent_backward):
// results bit-identical to the single-threaded pass, hooks, retain_grad, anomaly mode,
// create_graph and errors thrown inside a rule with two heavy branches.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <xgrad/xgrad.hpp>

namespace {
using Tensors = std::vector<xg::Tensor>;

// Sets the thread count and, so that small shapes of fast tests count as heavy, the work
// threshold of nodes recorded in the scope; restores both and the concurrent switch at the end.
struct ThreadScope {
    int prev = xg::get_num_threads();
    bool prev_concurrent = xg::is_concurrent_backward();
    std::int64_t prev_cost = xg::detail::heavy_node_cost();
    explicit ThreadScope(int n) {
        xg::set_num_threads(n);
        xg::detail::set_heavy_node_cost(4096);
    }
    ~ThreadScope() {
        xg::set_num_threads(prev);
        xg::set_concurrent_backward(prev_concurrent);
        xg::detail::set_heavy_node_cost(prev_cost);
    }
};

bool bit_equal(const xg::Tensor& a, const xg::Tensor& b) {
    if (!a.defined() || !b.defined()) return a.defined() == b.defined();
    if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
    return std::memcmp(a.array().raw(), b.array().raw(), a.numel() * xg::dtype_size(a.dtype())) == 0;
}

// Leaves of a graph with two heavy branches (96x96 float32 matmul chains) that share the leaf
// `w` and the input `x`, so that w's and x's gradients are sums of several contributions whose
// rounding depends on the order of the additions.
struct Net {
    xg::Tensor x, w, a, b;
    Net() {
        xg::manual_seed(7);
        x = (xg::randn({96, 96}) * 3.0).requires_grad_();
        w = xg::randn({96, 96}).requires_grad_();
        a = xg::randn({96, 96}).requires_grad_();
        b = xg::randn({96, 96}).requires_grad_();
    }
    // loss = sum(tanh(tanh(x.w).a) * 1e3) + sum(sigmoid(x.w).b) + sum(x * 1e-3)
    xg::Tensor branch_a() const { return xg::tanh(xg::matmul(xg::tanh(xg::matmul(x, w)), a)) * 1e3; }
    xg::Tensor branch_b() const { return xg::matmul(xg::sigmoid(xg::matmul(x, w)), b); }
    xg::Tensor loss() const { return xg::sum(branch_a()) + xg::sum(branch_b()) + xg::sum(x * 1e-3); }
    Tensors leaves() const { return {x, w, a, b}; }
    Tensors grads() const { return {x.grad(), w.grad(), a.grad(), b.grad()}; }
};

// Gradients of the Net at `threads` threads with concurrent branches on or off; checks whether
// the concurrent pass ran.
Tensors net_grads(int threads, bool concurrent) {
    ThreadScope scope(threads);
    xg::set_concurrent_backward(concurrent);
    Net net;
    const auto before = xg::detail::concurrent_pass_count();
    net.loss().backward();
    const bool ran = xg::detail::concurrent_pass_count() != before;
    BOOST_TEST(ran == (concurrent && threads > 1));
    return net.grads();
}
}  // namespace

BOOST_AUTO_TEST_SUITE(autograd_concurrent)

BOOST_AUTO_TEST_CASE(two_heavy_branches_give_bit_identical_gradients_at_1_and_2_threads) {
    const Tensors serial = net_grads(1, true);
    const Tensors concurrent = net_grads(2, true);
    const Tensors kernels_only = net_grads(2, false);
    for (std::size_t i = 0; i < serial.size(); ++i) {
        BOOST_TEST(bit_equal(serial[i], concurrent[i]), "leaf " << i);
        BOOST_TEST(bit_equal(serial[i], kernels_only[i]), "leaf " << i);
    }
    // Repeated concurrent passes (different schedules) give the same bits.
    for (int rep = 0; rep < 5; ++rep) {
        const Tensors again = net_grads(2, true);
        for (std::size_t i = 0; i < serial.size(); ++i) BOOST_TEST(bit_equal(serial[i], again[i]));
    }
}

BOOST_AUTO_TEST_CASE(gradients_match_the_hand_derived_formula) {
    ThreadScope scope(2);
    xg::manual_seed(3);
    auto x = xg::randn({128, 128}, xg::f64).requires_grad_();
    auto p = xg::randn({128, 128}, xg::f64).requires_grad_();
    auto q = xg::randn({128, 128}, xg::f64).requires_grad_();
    // L = sum(x.p) + sum(x.q): dL/dx = 1 (p + q)^T summed over rows, i.e. dL/dx[i,k] = sum_j p[k,j] + q[k,j].
    const auto before = xg::detail::concurrent_pass_count();
    (xg::sum(xg::matmul(x, p)) + xg::sum(xg::matmul(x, q))).backward();
    BOOST_TEST(xg::detail::concurrent_pass_count() == before + 1);
    const auto row = (xg::sum(p, {1}) + xg::sum(q, {1})).to_vector<double>();
    const auto gx = x.grad().to_vector<double>();
    for (std::size_t i = 0; i < 128; ++i)
        for (std::size_t k = 0; k < 128; ++k) BOOST_TEST(gx[i * 128 + k] == row[k], boost::test_tools::tolerance(1e-9));
    const auto colx = xg::sum(x, {0}).to_vector<double>();  // dL/dp[k,j] = sum_i x[i,k]
    const auto gp = p.grad().to_vector<double>();
    for (std::size_t k = 0; k < 128; ++k) BOOST_TEST(gp[k * 128 + 5] == colx[k], boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(small_graphs_stay_on_the_single_threaded_pass) {
    ThreadScope scope(2);
    auto w = xg::full({16}, 0.5).requires_grad_();
    xg::Tensor x = xg::randn({16});
    for (int i = 0; i < 100; ++i) x = xg::tanh(x * w) + x;  // forks, but nothing heavy
    const auto before = xg::detail::concurrent_pass_count();
    xg::sum(x).backward();
    BOOST_TEST(xg::detail::concurrent_pass_count() == before);
    BOOST_TEST(w.grad().defined());
}

BOOST_AUTO_TEST_CASE(a_diamond_over_one_heavy_node_is_no_fork) {
    ThreadScope scope(2);
    xg::detail::set_heavy_node_cost(27000);  // a 96^3 matmul (27,648 elements) is heavy, unary ops are not
    Net net;
    auto before = xg::detail::concurrent_pass_count();
    // Two light paths from one heavy node (as in x - logsumexp(x)): nothing to run side by side.
    auto m = xg::matmul(net.x, net.w);
    xg::sum(xg::sigmoid(m) - xg::sum(m, {1}, true)).backward();
    BOOST_TEST(xg::detail::concurrent_pass_count() == before);
    BOOST_TEST(net.w.grad().defined());
    // Heavy work on both sides: concurrent.
    before = xg::detail::concurrent_pass_count();
    xg::sum(xg::matmul(xg::tanh(xg::matmul(net.x, net.w)), net.a) + xg::matmul(net.x, net.b)).backward();
    BOOST_TEST(xg::detail::concurrent_pass_count() == before + 1);
}

BOOST_AUTO_TEST_CASE(hooks_and_retain_grad_work_in_both_branches) {
    auto run = [](int threads) {
        ThreadScope scope(threads);
        Net net;
        auto ha = xg::tanh(xg::matmul(net.x, net.w));
        auto hb = xg::sigmoid(xg::matmul(net.x, net.w));
        ha.retain_grad();
        hb.retain_grad();
        int calls = 0;  // hooks of a concurrent pass run one at a time
        ha.register_hook([&](const xg::Tensor& g) {
            ++calls;
            return g * 2.0;
        });
        hb.register_hook([&](const xg::Tensor& g) {
            ++calls;
            return g * 0.5;
        });
        net.w.register_hook([&](const xg::Tensor& g) {
            ++calls;
            return g + 1.0;
        });
        const auto before = xg::detail::concurrent_pass_count();
        (xg::sum(xg::matmul(ha, net.a)) + xg::sum(xg::matmul(hb, net.b))).backward();
        BOOST_TEST((xg::detail::concurrent_pass_count() != before) == (threads > 1));
        BOOST_TEST(calls == 3);
        Tensors r = net.grads();
        r.push_back(ha.grad());
        r.push_back(hb.grad());
        return r;
    };
    const Tensors one = run(1), two = run(2);
    for (std::size_t i = 0; i < one.size(); ++i) {
        BOOST_TEST(one[i].defined());
        BOOST_TEST(bit_equal(one[i], two[i]), "gradient " << i);
    }
    // The hook doubled ha's gradient before it reached retain_grad: ha.grad = 2 * (1 . a^T).
    Net net;
    const auto expect = (xg::matmul(xg::ones({96, 96}), xg::transpose(net.a, 0, 1)) * 2.0).to_vector<float>();
    const auto got = two[4].to_vector<float>();
    for (std::size_t i = 0; i < got.size(); i += 97)
        BOOST_TEST(got[i] == expect[i], boost::test_tools::tolerance(1e-4f));
}

BOOST_AUTO_TEST_CASE(a_hook_may_run_a_nested_backward) {
    ThreadScope scope(2);
    Net net;
    auto side = xg::randn({4}).requires_grad_();
    auto ha = xg::tanh(xg::matmul(net.x, net.w));
    ha.register_hook([&](const xg::Tensor& g) {
        xg::EnableGradGuard grad_on;      // hooks run in no-grad mode
        xg::sum(side * side).backward();  // another graph, from inside the pass
        return g;
    });
    (xg::sum(xg::matmul(ha, net.a)) + xg::sum(xg::matmul(xg::sigmoid(xg::matmul(net.x, net.w)), net.b))).backward();
    BOOST_TEST(bit_equal(side.grad(), side * 2.0));
    BOOST_TEST(net.w.grad().defined());
}

BOOST_AUTO_TEST_CASE(create_graph_gives_the_same_second_derivatives) {
    auto run = [](int threads) {
        ThreadScope scope(threads);
        Net net;
        const auto before = xg::detail::concurrent_pass_count();
        auto g = xg::grad({net.loss()}, {net.w}, {}, false, true)[0];
        BOOST_TEST((xg::detail::concurrent_pass_count() != before) == (threads > 1));
        BOOST_TEST(g.requires_grad());
        auto gg = xg::grad({xg::sum(g * g)}, {net.x, net.a});
        return Tensors{g.detach(), gg[0], gg[1]};
    };
    const Tensors one = run(1), two = run(2);
    for (std::size_t i = 0; i < one.size(); ++i) BOOST_TEST(bit_equal(one[i], two[i]), "result " << i);
}

BOOST_AUTO_TEST_CASE(anomaly_mode_names_the_op_of_a_branch) {
    ThreadScope scope(2);
    Net net;
    xg::AnomalyGuard anomaly;
    // sqrt's gradient is inf at 0 although its forward is finite there.
    auto bad = xg::sqrt(xg::relu(xg::matmul(net.x, net.w) - 1e9));
    auto loss = xg::sum(bad) + xg::sum(xg::matmul(xg::tanh(xg::matmul(net.x, net.w)), net.a));
    const auto before = xg::detail::concurrent_pass_count();
    BOOST_CHECK_EXCEPTION(loss.backward(), xg::ValueError, [](const xg::ValueError& e) {
        return std::string(e.what()).find("sqrt: backward produced NaN or inf") != std::string::npos;
    });
    BOOST_TEST(xg::detail::concurrent_pass_count() == before + 1);
}

BOOST_AUTO_TEST_CASE(an_error_in_a_rule_propagates_and_leaves_the_graph_usable) {
    ThreadScope scope(2);
    Net net;
    bool fail = true;
    // identity with a rule that throws while `fail` is set
    auto flaky = [&fail](const xg::Tensor& t) {
        return xg::make_result("flaky", t.array().clone(), {t}, [&fail](const xg::Tensor& g, const xg::Tensor&) {
            if (fail) throw xg::ShapeError("flaky: refused the gradient of shape [96,96]");
            return Tensors{g};
        });
    };
    auto loss = xg::sum(flaky(xg::matmul(xg::tanh(xg::matmul(net.x, net.w)), net.a))) +
                xg::sum(xg::matmul(xg::sigmoid(xg::matmul(net.x, net.w)), net.b));
    for (int rep = 0; rep < 3; ++rep) {
        const auto before = xg::detail::concurrent_pass_count();
        BOOST_CHECK_EXCEPTION(loss.backward({}, true), xg::ShapeError, [](const xg::ShapeError& e) {
            return std::string(e.what()).find("flaky: refused") != std::string::npos;
        });
        BOOST_TEST(xg::detail::concurrent_pass_count() == before + 1);
    }
    // No gradient is left pending in the graph: the next pass gives exactly the plain result.
    fail = false;
    for (auto& t : net.leaves()) t.zero_grad();
    loss.backward({}, true);
    const Tensors after = net.grads();
    for (auto& t : net.leaves()) t.zero_grad();
    {
        ThreadScope serial(1);
        loss.backward({}, true);
    }
    const Tensors serial_grads = net.grads();
    for (std::size_t i = 0; i < after.size(); ++i) BOOST_TEST(bit_equal(after[i], serial_grads[i]), "leaf " << i);
}

BOOST_AUTO_TEST_CASE(grad_with_several_outputs_and_unused_inputs) {
    auto run = [](int threads) {
        ThreadScope scope(threads);
        Net net;
        auto unused = xg::randn({3}).requires_grad_();
        auto r = xg::grad({xg::sum(net.branch_a()), xg::sum(net.branch_b())}, {net.w, net.a, unused}, {}, false, false,
                          true);
        BOOST_TEST(!r[2].defined());
        BOOST_TEST(!net.w.grad().defined());  // grad() does not touch .grad
        return Tensors{r[0], r[1]};
    };
    const Tensors one = run(1), two = run(2);
    for (std::size_t i = 0; i < one.size(); ++i) BOOST_TEST(bit_equal(one[i], two[i]), "result " << i);
}

BOOST_AUTO_TEST_SUITE_END()

// Fusion in nn/: Sequential's Linear + activation (one xg::linear call), cross-entropy over class
// indices (one op), and the optimizers' one-pass updates, each against the unfused formula.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

#include "fused_compare.hpp"

namespace nn = xg::nn;
using nn::Reduction;
using xg::Tensor;
using V = std::vector<Tensor>;

using xgt::check_close;
using xgt::max_ulp;

namespace {
Tensor rg(const Tensor& t) { return Tensor(t).requires_grad_(); }

std::shared_ptr<nn::Sequential> mlp(const std::string& act) {
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(20, 16), std::make_shared<nn::Activation>(act),
        std::make_shared<nn::Linear>(16, 12), std::make_shared<nn::Activation>(act),
        std::make_shared<nn::Linear>(12, 5)});
}

// The model run module by module (no fusion): the reference.
Tensor unfused(nn::Sequential& m, const Tensor& x) {
    Tensor y = x;
    for (std::size_t i = 0; i < m.size(); ++i) {
        auto* lin = dynamic_cast<nn::Linear*>(m[i].get());
        y = lin ? xg::matmul(y, xg::transpose(lin->weight, 0, 1)) + lin->bias : (*m[i])(y);
    }
    return y;
}

// The cross-entropy formula before fusion: log_softmax, pick, label smoothing, reduce.
Tensor ce_reference(const Tensor& logits, const Tensor& target, Reduction r, double ls) {
    const Tensor logp = xg::log_softmax(logits, 1);
    Tensor loss = -xg::squeeze(xg::gather(logp, 1, xg::unsqueeze(target, 1)), 1);
    if (ls > 0) loss = loss * (1.0 - ls) - xg::sum(logp, {1}) * (ls / static_cast<double>(logits.size(1)));
    return r == Reduction::mean ? xg::mean(loss) : r == Reduction::sum ? xg::sum(loss) : loss;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_fused)

BOOST_AUTO_TEST_CASE(sequential_fuses_linear_and_activation) {
    for (const char* act : {"relu", "sigmoid", "tanh", "gelu", "silu"}) {
        BOOST_TEST_CONTEXT("activation " << act) {
            xg::manual_seed(11);
            auto m = mlp(act);
            auto x = xg::randn({9, 20});
            auto y = m->forward(x);
            BOOST_TEST(y.grad_fn_name() == "linear");  // last Linear has no activation after it
            auto ref = unfused(*m, x);
            BOOST_TEST(max_ulp(y, ref) <= 1);
            auto gf = xg::grad({xg::sum(y * y)}, m->parameters());
            auto gr = xg::grad({xg::sum(ref * ref)}, m->parameters());
            for (std::size_t i = 0; i < gf.size(); ++i) check_close(gf[i], gr[i], 1e-5);
        }
    }
}

BOOST_AUTO_TEST_CASE(fused_call_is_one_node) {
    auto m = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(4, 3), std::make_shared<nn::Activation>("relu")});
    BOOST_TEST(m->forward(xg::randn({2, 4})).grad_fn_name() == "linear_act");
    // Module list and state_dict names are those of the unfused model.
    BOOST_TEST(m->size() == 2u);
    auto sd = m->state_dict();
    BOOST_REQUIRE_EQUAL(sd.size(), 2u);
    BOOST_TEST(sd[0].first == "0.weight");
    BOOST_TEST(sd[1].first == "0.bias");
    // A forward hook on either module keeps them apart (the hook sees the module's own output).
    int calls = 0;
    (*m)[1]->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor&) { ++calls; });
    BOOST_TEST(m->forward(xg::randn({2, 4})).grad_fn_name() == "relu");
    BOOST_TEST(calls == 1);
    // Activations that are not built-ins, or cannot be fused, run as their own module.
    nn::Activation user("relu2", [](const Tensor& t) { return xg::relu(t); });
    BOOST_TEST(!user.fusable());
    BOOST_TEST(!nn::Activation("mish").fusable());
    BOOST_TEST(nn::Activation("relu").fusable());
}

BOOST_AUTO_TEST_CASE(cross_entropy_matches_unfused_formula) {
    xg::manual_seed(12);
    for (auto dt : {xg::f32, xg::f64}) {
        auto logits = xg::randn({7, 5}, dt) * 3.0;
        auto target = xg::randint(0, 5, {7});
        for (double ls : {0.0, 0.2}) {
            for (auto r : {Reduction::mean, Reduction::sum, Reduction::none}) {
                BOOST_TEST_CONTEXT("ls " << ls << " reduction " << static_cast<int>(r) << " f64 " << (dt == xg::f64)) {
                    auto x1 = rg(logits), x2 = rg(logits);
                    auto a = nn::cross_entropy(x1, target, r, ls);
                    auto b = ce_reference(x2, target, r, ls);
                    BOOST_TEST(a.grad_fn_name() == "cross_entropy");
                    const double tol = dt == xg::f64 ? 1e-13 : 2e-6;
                    check_close(a, b, tol);
                    auto g = r == Reduction::none ? xg::randn({7}, dt) : Tensor();
                    if (g.defined()) {
                        xg::sum(a * g).backward();
                        xg::sum(b * g).backward();
                    } else {
                        a.backward();
                        b.backward();
                    }
                    check_close(x1.grad(), x2.grad(), tol);
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(cross_entropy_by_hand_and_extremes) {
    auto logits = xg::tensor({1, 2, 3, 0, 0, 0}, {2, 3}, xg::f64);
    auto target = xg::tensor_i64({2, 0});
    const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)), lse1 = std::log(3.0);
    BOOST_TEST(std::abs(nn::cross_entropy(logits, target).item<double>() - (lse0 - 3 + lse1) / 2) < 1e-15);
    // Logits of +-1e4 stay finite, gradient softmax - onehot.
    auto big = rg(xg::tensor({1e4, -1e4, 0, 0}, {2, 2}, xg::f64));
    auto l = nn::cross_entropy(big, xg::tensor_i64({1, 0}), Reduction::sum);
    BOOST_TEST(std::abs(l.item<double>() - (2e4 + std::log(2.0))) < 1e-9);
    l.backward();
    const std::vector<double> want{1, -1, -0.5, 0.5};
    const auto got = big.grad().to_vector<double>();
    for (int i = 0; i < 4; ++i) BOOST_TEST(std::abs(got[i] - want[i]) < 1e-15);
    BOOST_CHECK_THROW(nn::cross_entropy(logits, xg::tensor_i64({3, 0})), xg::IndexError);
}

BOOST_AUTO_TEST_CASE(cross_entropy_gradcheck_and_gradgradcheck) {
    xg::manual_seed(13);
    auto x = rg(xg::randn({4, 3}, xg::f64));
    auto t = xg::randint(0, 3, {4});
    for (double ls : {0.0, 0.3})
        for (auto r : {Reduction::mean, Reduction::sum, Reduction::none}) {
            auto f = [t, r, ls](const V& in) { return nn::cross_entropy(in[0], t, r, ls); };
            XG_CHECK_GRAD(f, {x});
            XG_CHECK_GRADGRAD(f, {x});
        }
}

// --- optimizers: the one-pass update against the tensor-op formulas it replaced -------------------
namespace {
struct RefSGD {
    nn::SGDOptions o;
    std::vector<Tensor> buf;
    void step(std::vector<Tensor>& ps) {
        xg::NoGradGuard ng;
        buf.resize(ps.size());
        for (std::size_t i = 0; i < ps.size(); ++i) {
            Tensor& p = ps[i];
            Tensor d = p.grad();
            if (o.weight_decay != 0) d = d + p * o.weight_decay;
            if (o.momentum != 0) {
                if (!buf[i].defined()) {
                    buf[i] = xg::zeros_like(d);
                    buf[i].copy_(d);
                } else {
                    buf[i].mul_(o.momentum).add_(d, 1.0 - o.dampening);
                }
                d = o.nesterov ? d + buf[i] * o.momentum : buf[i];
            }
            p.sub_(d, o.lr);
        }
    }
};

struct RefAdam {
    nn::AdamOptions o;
    bool decoupled;
    std::vector<Tensor> m, v;
    int t = 0;
    void step(std::vector<Tensor>& ps) {
        xg::NoGradGuard ng;
        ++t;
        m.resize(ps.size());
        v.resize(ps.size());
        for (std::size_t i = 0; i < ps.size(); ++i) {
            Tensor& p = ps[i];
            Tensor d = p.grad();
            if (o.weight_decay != 0) {
                if (decoupled)
                    p.mul_(1.0 - o.lr * o.weight_decay);
                else
                    d = d + p * o.weight_decay;
            }
            if (!m[i].defined()) m[i] = xg::zeros_like(p), v[i] = xg::zeros_like(p);
            m[i].mul_(o.beta1).add_(d, 1.0 - o.beta1);
            v[i].mul_(o.beta2).add_(xg::square(d), 1.0 - o.beta2);
            const double bc1 = 1.0 - std::pow(o.beta1, t), bc2 = 1.0 - std::pow(o.beta2, t);
            p.sub_(m[i] / (xg::sqrt(v[i]) * (1.0 / std::sqrt(bc2)) + o.eps), o.lr / bc1);
        }
    }
};

// Two copies of the same parameters (sizes above and below the parallel grain) with the same gradients.
struct Twin {
    std::vector<Tensor> a, b;
    explicit Twin(xg::Dtype dt) {
        xg::manual_seed(21);
        for (xg::Shape s : {xg::Shape{300, 400}, xg::Shape{7}, xg::Shape{3, 5}}) {
            auto v = xg::randn(s, dt);
            a.push_back(rg(v.detach() * 1.0));
            b.push_back(rg(v.detach() * 1.0));
        }
    }
    void set_grads(int step) {
        xg::manual_seed(100 + step);
        for (std::size_t i = 0; i < a.size(); ++i) {
            auto g = xg::randn(a[i].shape(), a[i].dtype());
            a[i].set_grad(g);
            b[i].set_grad(g);
        }
    }
    void check(double tol) {
        for (std::size_t i = 0; i < a.size(); ++i) check_close(a[i], b[i], tol);
    }
};
}  // namespace

BOOST_AUTO_TEST_CASE(sgd_one_pass_matches_formula) {
    for (auto dt : {xg::f32, xg::f64})
        for (nn::SGDOptions o :
             {nn::SGDOptions{0.1, 0.0, 0.0, 0.0, false}, nn::SGDOptions{0.05, 0.9, 0.0, 0.0, false},
              nn::SGDOptions{0.05, 0.9, 0.0, 0.01, true}, nn::SGDOptions{0.05, 0.8, 0.3, 0.02, false}}) {
            BOOST_TEST_CONTEXT("momentum " << o.momentum << " nesterov " << o.nesterov << " wd " << o.weight_decay
                                           << " dampening " << o.dampening) {
                Twin tw(dt);
                nn::SGD opt(tw.a, o);
                RefSGD ref{o, {}};
                for (int s = 0; s < 5; ++s) {
                    tw.set_grads(s);
                    opt.step();
                    ref.step(tw.b);
                }
                tw.check(dt == xg::f64 ? 1e-15 : 1e-6);
            }
        }
}

BOOST_AUTO_TEST_CASE(adam_and_adamw_one_pass_match_formula) {
    for (auto dt : {xg::f32, xg::f64})
        for (bool decoupled : {false, true})
            for (double wd : {0.0, 0.05}) {
                BOOST_TEST_CONTEXT("decoupled " << decoupled << " wd " << wd << " f64 " << (dt == xg::f64)) {
                    Twin tw(dt);
                    nn::AdamOptions o;
                    o.lr = 0.01, o.weight_decay = wd;
                    std::unique_ptr<nn::Optimizer> opt;
                    if (decoupled)
                        opt = std::make_unique<nn::AdamW>(tw.a, o);
                    else
                        opt = std::make_unique<nn::Adam>(tw.a, o);
                    RefAdam ref{o, decoupled, {}, {}};
                    for (int s = 0; s < 5; ++s) {
                        tw.set_grads(s);
                        opt->step();
                        ref.step(tw.b);
                    }
                    tw.check(dt == xg::f64 ? 1e-14 : 1e-6);
                }
            }
}

BOOST_AUTO_TEST_CASE(adam_matches_pytorch_rule_by_hand) {
    // One parameter, two steps of PyTorch's documented Adam, in double by hand.
    auto p = rg(xg::tensor({1.0, -2.0}, {2}, xg::f64));
    nn::Adam opt({p}, nn::AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.0});
    double pv[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
    const double grads[2][2] = {{0.5, -1.0}, {0.25, 2.0}};
    for (int t = 1; t <= 2; ++t) {
        p.set_grad(xg::tensor({grads[t - 1][0], grads[t - 1][1]}, {2}, xg::f64));
        opt.step();
        for (int i = 0; i < 2; ++i) {
            const double g = grads[t - 1][i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            const double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
            pv[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
        }
    }
    const auto got = p.to_vector<double>();
    for (int i = 0; i < 2; ++i) BOOST_TEST(std::abs(got[i] - pv[i]) < 1e-12);
    // The state dict still holds the moment buffers.
    BOOST_TEST(opt.state_dict().tensors.size() == 2u);
}

BOOST_AUTO_TEST_CASE(sgd_state_and_version) {
    auto p = rg(xg::tensor({1.0, 2.0}, {2}, xg::f64));
    nn::SGD opt({p}, nn::SGDOptions{0.5, 0.9});
    p.set_grad(xg::tensor({1.0, 1.0}, {2}, xg::f64));
    opt.step();  // b = g, p = p - 0.5 g
    opt.step();  // b = 0.9 b + g = 1.9, p -= 0.95
    const auto got = p.to_vector<double>();
    BOOST_TEST(std::abs(got[0] - (1.0 - 0.5 - 0.95)) < 1e-15);
    auto sd = opt.state_dict();
    BOOST_REQUIRE_EQUAL(sd.tensors.size(), 1u);
    BOOST_TEST(sd.tensors[0].first == "state.0.momentum_buffer");
    BOOST_TEST(std::abs(sd.tensors[0].second.to_vector<double>()[1] - 1.9) < 1e-15);
    // A value saved for backward before the update is detected as modified.
    auto q = rg(xg::tensor({1.0, 2.0}, {2}, xg::f64));
    auto y = xg::sum(q * q);
    nn::SGD o2({q}, nn::SGDOptions{0.1});
    q.set_grad(xg::ones({2}, xg::f64));
    o2.step();
    BOOST_CHECK_THROW(y.backward(), xg::GraphError);
}

BOOST_AUTO_TEST_SUITE_END()

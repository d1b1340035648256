// Optimizers against PyTorch's documented update rules (a scalar re-implementation of each algorithm's
// pseudo-code, plus first steps worked out by hand), parameter groups, clipping and schedulers.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <functional>
#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
using xg::Tensor;

namespace {
const std::vector<double> kInit{1.0, -0.5, 2.0};
// A fixed sequence of gradients, one row per step.
const std::vector<std::vector<double>> kGrads{
    {0.5, -1.0, 0.25}, {-1.0, 0.5, 0.0}, {0.3, 0.3, -2.0}, {2.0, -0.1, 0.7}, {0.0, 0.2, -0.4}};

Tensor param() { return xg::tensor(std::vector<double>(kInit), {3}, xg::f64).requires_grad_(); }

// Drives opt over the gradient sequence; returns the parameter after each step.
std::vector<std::vector<double>> drive(nn::Optimizer& opt, Tensor& p) {
    std::vector<std::vector<double>> r;
    for (const auto& g : kGrads) {
        p.set_grad(xg::tensor(std::vector<double>(g), {3}, xg::f64));
        opt.step();
        r.push_back(p.to_vector<double>());
    }
    return r;
}

// The documented algorithm on one scalar coordinate: state in, state out.
using ScalarRule = std::function<double(double theta, double g, int t, std::vector<double>& state)>;
std::vector<std::vector<double>> reference(const ScalarRule& rule, int state_size) {
    std::vector<std::vector<double>> r;
    std::vector<double> theta = kInit;
    std::vector<std::vector<double>> st(3, std::vector<double>(state_size, 0.0));
    for (std::size_t t = 0; t < kGrads.size(); ++t) {
        for (int i = 0; i < 3; ++i) theta[i] = rule(theta[i], kGrads[t][i], static_cast<int>(t) + 1, st[i]);
        r.push_back(theta);
    }
    return r;
}

void check_trajectory(const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& want,
                      double tol = 1e-12) {
    BOOST_REQUIRE_EQUAL(got.size(), want.size());
    for (std::size_t t = 0; t < got.size(); ++t)
        for (std::size_t i = 0; i < 3; ++i)
            BOOST_TEST(std::abs(got[t][i] - want[t][i]) <= tol * (1 + std::abs(want[t][i])),
                       "step " << t + 1 << " coordinate " << i << ": " << got[t][i] << " vs " << want[t][i]);
}

ScalarRule sgd_rule(double lr, double mu, double damp, double wd, bool nesterov) {
    return [=](double th, double g, int t, std::vector<double>& s) {
        g += wd * th;
        if (mu != 0) {
            s[0] = t > 1 ? mu * s[0] + (1 - damp) * g : g;
            g = nesterov ? g + mu * s[0] : s[0];
        }
        return th - lr * g;
    };
}

ScalarRule adam_rule(double lr, double b1, double b2, double eps, double wd, bool decoupled) {
    return [=](double th, double g, int t, std::vector<double>& s) {
        if (decoupled)
            th -= lr * wd * th;
        else
            g += wd * th;
        s[0] = b1 * s[0] + (1 - b1) * g;
        s[1] = b2 * s[1] + (1 - b2) * g * g;
        const double mh = s[0] / (1 - std::pow(b1, t)), vh = s[1] / (1 - std::pow(b2, t));
        return th - lr * mh / (std::sqrt(vh) + eps);
    };
}
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_optim)

BOOST_AUTO_TEST_CASE(sgd_first_steps_by_hand) {
    // lr 0.1, momentum 0.9: b1 = g1 = 0.5 -> 1 - 0.05 = 0.95; b2 = 0.9*0.5 - 1 = -0.55 -> 0.95 + 0.055.
    auto p = param();
    nn::SGD opt({p}, {.lr = 0.1, .momentum = 0.9});
    auto traj = drive(opt, p);
    BOOST_TEST(std::abs(traj[0][0] - 0.95) < 1e-15);
    BOOST_TEST(std::abs(traj[1][0] - 1.005) < 1e-15);
}

BOOST_AUTO_TEST_CASE(sgd_matches_the_documented_rule) {
    struct Case {
        double lr, mu, damp, wd;
        bool nesterov;
    };
    for (const Case& c : {Case{0.1, 0, 0, 0, false}, Case{0.05, 0.9, 0, 0, false}, Case{0.05, 0.9, 0.3, 0.01, false},
                          Case{0.02, 0.8, 0, 0.1, true}}) {
        auto p = param();
        nn::SGD opt({p}, {c.lr, c.mu, c.damp, c.wd, c.nesterov});
        check_trajectory(drive(opt, p), reference(sgd_rule(c.lr, c.mu, c.damp, c.wd, c.nesterov), 1));
    }
    BOOST_CHECK_THROW(nn::SGD({param()}, {.lr = 0.1, .momentum = 0.0, .nesterov = true}), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(adam_first_step_by_hand_and_documented_rule) {
    // Step 1: m^ = g, v^ = g^2, so theta -= lr g / (|g| + eps): about lr sign(g).
    auto p = param();
    nn::Adam opt({p}, {.lr = 0.01});
    auto traj = drive(opt, p);
    BOOST_TEST(std::abs(traj[0][0] - (1.0 - 0.01 * 0.5 / (0.5 + 1e-8))) < 1e-15);
    BOOST_TEST(std::abs(traj[0][1] - (-0.5 + 0.01 * 1.0 / (1.0 + 1e-8))) < 1e-15);
    check_trajectory(traj, reference(adam_rule(0.01, 0.9, 0.999, 1e-8, 0, false), 2));
    auto q = param();
    nn::Adam wd({q}, {.lr = 0.02, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
    check_trajectory(drive(wd, q), reference(adam_rule(0.02, 0.8, 0.99, 1e-6, 0.1, false), 2));
}

BOOST_AUTO_TEST_CASE(adamw_decouples_weight_decay) {
    auto p = param();
    nn::AdamW opt({p});  // lr 1e-3, weight_decay 0.01 by default
    check_trajectory(drive(opt, p), reference(adam_rule(1e-3, 0.9, 0.999, 1e-8, 0.01, true), 2));
    auto q = param();
    nn::AdamW big({q}, {.lr = 0.05, .weight_decay = 0.5});
    check_trajectory(drive(big, q), reference(adam_rule(0.05, 0.9, 0.999, 1e-8, 0.5, true), 2));
}

BOOST_AUTO_TEST_CASE(rmsprop_matches_the_documented_rule) {
    struct Case {
        double lr, alpha, eps, wd, mu;
        bool centered;
    };
    for (const Case& c : {Case{0.01, 0.99, 1e-8, 0, 0, false}, Case{0.01, 0.9, 1e-8, 0.05, 0.5, false},
                          Case{0.005, 0.95, 1e-6, 0, 0.9, true}}) {
        auto p = param();
        nn::RMSprop opt({p}, {c.lr, c.alpha, c.eps, c.wd, c.mu, c.centered});
        auto rule = [c](double th, double g, int, std::vector<double>& s) {
            g += c.wd * th;
            s[0] = c.alpha * s[0] + (1 - c.alpha) * g * g;
            double v = s[0];
            if (c.centered) {
                s[1] = c.alpha * s[1] + (1 - c.alpha) * g;
                v -= s[1] * s[1];
            }
            if (c.mu > 0) {
                s[2] = c.mu * s[2] + g / (std::sqrt(v) + c.eps);
                return th - c.lr * s[2];
            }
            return th - c.lr * g / (std::sqrt(v) + c.eps);
        };
        check_trajectory(drive(opt, p), reference(rule, 3));
    }
    // First step by hand (alpha 0.99, no momentum): v = 0.01 g^2, theta -= lr g / (0.1 |g|) = 10 lr sign(g).
    auto p = param();
    nn::RMSprop opt({p}, {.lr = 0.01});
    auto traj = drive(opt, p);
    BOOST_TEST(std::abs(traj[0][0] - (1.0 - 0.01 * 0.5 / (0.1 * 0.5 + 1e-8))) < 1e-12);
}

BOOST_AUTO_TEST_CASE(adagrad_matches_the_documented_rule) {
    for (const nn::AdagradOptions o :
         {nn::AdagradOptions{.lr = 0.1, .eps = 1e-10},
          nn::AdagradOptions{
              .lr = 0.1, .lr_decay = 0.5, .weight_decay = 0.1, .initial_accumulator_value = 0.3, .eps = 1e-10}}) {
        auto p = param();
        nn::Adagrad opt({p}, o);
        auto rule = [o](double th, double g, int t, std::vector<double>& s) {
            if (t == 1) s[0] = o.initial_accumulator_value;
            const double clr = o.lr / (1 + (t - 1) * o.lr_decay);
            g += o.weight_decay * th;
            s[0] += g * g;
            return th - clr * g / (std::sqrt(s[0]) + o.eps);
        };
        check_trajectory(drive(opt, p), reference(rule, 1));
    }
}

BOOST_AUTO_TEST_CASE(parameter_groups_have_their_own_lr_and_decay) {
    auto a = param(), b = param();
    nn::SGD opt(std::vector<nn::ParamGroup>{{{a}, 0.1, {}}, {{b}, {}, 0.5}}, {.lr = 0.01, .weight_decay = 0.0});
    BOOST_TEST(*opt.param_groups()[0].lr == 0.1);
    BOOST_TEST(*opt.param_groups()[1].lr == 0.01);  // default filled in
    a.set_grad(xg::ones({3}, xg::f64));
    b.set_grad(xg::ones({3}, xg::f64));
    opt.step();
    BOOST_TEST(std::abs(a.to_vector<double>()[0] - (1.0 - 0.1)) < 1e-15);
    BOOST_TEST(std::abs(b.to_vector<double>()[0] - (1.0 - 0.01 * (1.0 + 0.5 * 1.0))) < 1e-15);
    // Parameters without a gradient are left alone; zero_grad clears all.
    opt.zero_grad();
    const auto before = a.to_vector<double>();
    opt.step();
    BOOST_TEST(a.to_vector<double>() == before, boost::test_tools::per_element());
    BOOST_CHECK_THROW(nn::SGD({a, a}), xg::ValueError);
    BOOST_CHECK_THROW(nn::SGD({xg::zeros({2})}), xg::ValueError);  // does not require grad
}

BOOST_AUTO_TEST_CASE(updates_run_in_place_and_keep_parameters_leaves) {
    nn::Linear lin(3, 2);
    auto impl = lin.weight.impl();
    nn::Adam opt(lin.parameters());
    auto loss = xg::sum(xg::square(lin(xg::ones({4, 3}))));
    loss.backward();
    opt.step();
    BOOST_TEST(lin.weight.impl() == impl);
    BOOST_TEST(lin.weight.is_leaf());
    BOOST_TEST(xg::is_grad_enabled());
}

BOOST_AUTO_TEST_CASE(clip_grad_norm_and_value) {
    auto a = xg::zeros({2}, xg::f64).requires_grad_(), b = xg::zeros({1}, xg::f64).requires_grad_();
    a.set_grad(xg::tensor({3, 4}, {2}, xg::f64));
    b.set_grad(xg::tensor({12}, {1}, xg::f64));
    const double total = nn::clip_grad_norm_({a, b}, 6.5);
    BOOST_TEST(total == 13.0);
    const double c = 6.5 / (13.0 + 1e-6);
    BOOST_TEST(std::abs(a.grad().to_vector<double>()[1] - 4 * c) < 1e-15);
    BOOST_TEST(std::abs(b.grad().to_vector<double>()[0] - 12 * c) < 1e-15);
    // Below the threshold nothing changes.
    BOOST_TEST(std::abs(nn::clip_grad_norm_({a, b}, 100.0) - 6.5 * 13 / (13 + 1e-6)) < 1e-12);
    BOOST_TEST(std::abs(b.grad().to_vector<double>()[0] - 12 * c) < 1e-15);
    // Infinity norm and norm 1.
    b.set_grad(xg::tensor({-12}, {1}, xg::f64));
    BOOST_TEST(nn::clip_grad_norm_({a, b}, 1e9, INFINITY) == 12.0);
    a.set_grad(xg::tensor({3, -4}, {2}, xg::f64));
    BOOST_TEST(nn::clip_grad_norm_({a, b}, 1e9, 1.0) == 19.0);
    nn::clip_grad_value_({a, b}, 3.5);
    BOOST_TEST(a.grad().to_vector<double>() == (std::vector<double>{3, -3.5}), boost::test_tools::per_element());
    BOOST_TEST(b.grad().to_vector<double>()[0] == -3.5);
}

BOOST_AUTO_TEST_CASE(clipping_scales_a_shared_gradient_once) {
    // loss = sum(p + q): the engine may hand p and q one gradient buffer; each must be scaled once.
    auto p = xg::ones({4}, xg::f64).requires_grad_(), q = xg::ones({4}, xg::f64).requires_grad_();
    xg::sum(p + q).backward();
    const double total = nn::clip_grad_norm_({p, q}, 1.0);
    BOOST_TEST(std::abs(total - std::sqrt(8.0)) < 1e-12);
    const double c = 1.0 / (std::sqrt(8.0) + 1e-6);
    for (double g : p.grad().to_vector<double>()) BOOST_TEST(std::abs(g - c) < 1e-15);
    for (double g : q.grad().to_vector<double>()) BOOST_TEST(std::abs(g - c) < 1e-15);
}

BOOST_AUTO_TEST_CASE(schedulers_follow_their_formulas) {
    auto p = param();
    auto lrs = [&](auto make, int n) {
        nn::SGD opt({p}, {.lr = 0.1});
        auto sched = make(opt);
        std::vector<double> r{*opt.param_groups()[0].lr};
        for (int i = 0; i < n; ++i) {
            sched->step();
            r.push_back(*opt.param_groups()[0].lr);
        }
        return r;
    };
    auto close = [](const std::vector<double>& a, const std::vector<double>& b) {
        BOOST_REQUIRE_EQUAL(a.size(), b.size());
        for (std::size_t i = 0; i < a.size(); ++i)
            BOOST_TEST(std::abs(a[i] - b[i]) < 1e-15, "step " << i << ": " << a[i] << " vs " << b[i]);
    };
    close(lrs([](nn::Optimizer& o) { return std::make_unique<nn::StepLR>(o, 2, 0.5); }, 5),
          {0.1, 0.1, 0.05, 0.05, 0.025, 0.025});
    close(lrs(
              [](nn::Optimizer& o) {
                  return std::make_unique<nn::MultiStepLR>(o, std::vector<std::int64_t>{1, 3}, 0.1);
              },
              4),
          {0.1, 0.01, 0.01, 0.001, 0.001});
    close(lrs([](nn::Optimizer& o) { return std::make_unique<nn::ExponentialLR>(o, 0.5); }, 3),
          {0.1, 0.05, 0.025, 0.0125});
    close(
        lrs([](nn::Optimizer& o) { return std::make_unique<nn::CosineAnnealingLR>(o, 4, 0.02); }, 4),
        {0.1, 0.02 + 0.08 * (1 + std::cos(M_PI / 4)) / 2, 0.06, 0.02 + 0.08 * (1 + std::cos(3 * M_PI / 4)) / 2, 0.02});
    close(lrs([](nn::Optimizer& o) { return std::make_unique<nn::LinearWarmupLR>(o, 4, 0.2); }, 5),
          {0.02, 0.04, 0.06, 0.08, 0.1, 0.1});
    // Warm-up then cosine from the base lr.
    close(lrs(
              [](nn::Optimizer& o) {
                  auto cosine = std::make_shared<nn::CosineAnnealingLR>(o, 2);
                  return std::make_unique<nn::LinearWarmupLR>(o, 2, 0.5, cosine);
              },
              4),
          {0.05, 0.075, 0.1, 0.05, 0.0});
    // set_step jumps (resume).
    nn::SGD opt({p}, {.lr = 0.1});
    nn::StepLR s(opt, 2, 0.5);
    s.set_step(4);
    BOOST_TEST(s.get_last_lr()[0] == 0.025);
    BOOST_TEST(s.last_step() == 4);
}

BOOST_AUTO_TEST_CASE(optimizer_state_round_trip_continues_identically) {
    for (std::string name : {"sgd", "adam", "adamw", "rmsprop", "adagrad"}) {
        auto p = param(), q = param();
        auto a = nn::make_optimizer(name, {p}, 0.01);
        for (int t = 0; t < 2; ++t) {
            p.set_grad(xg::tensor(std::vector<double>(kGrads[t]), {3}, xg::f64));
            a->step();
        }
        {
            xg::NoGradGuard ng;
            q.copy_(p);
        }
        auto b = nn::make_optimizer(name, {q}, 0.5);  // a different lr: the state restores a's
        b->load_state_dict(a->state_dict());
        BOOST_TEST(*b->param_groups()[0].lr == 0.01);
        for (std::size_t t = 2; t < kGrads.size(); ++t) {
            p.set_grad(xg::tensor(std::vector<double>(kGrads[t]), {3}, xg::f64));
            q.set_grad(xg::tensor(std::vector<double>(kGrads[t]), {3}, xg::f64));
            a->step();
            b->step();
        }
        BOOST_TEST(p.to_vector<double>() == q.to_vector<double>(), boost::test_tools::per_element());
    }
    auto p = param();
    nn::Adam adam({p});
    nn::SGD sgd({param()});
    BOOST_CHECK_THROW(sgd.load_state_dict(adam.state_dict()), xg::ValueError);
    p.set_grad(xg::ones({3}, xg::f64));
    adam.step();
    nn::Adam other({xg::zeros({4}, xg::f64).requires_grad_()});
    BOOST_CHECK_THROW(other.load_state_dict(adam.state_dict()), xg::ValueError);
    BOOST_CHECK_THROW(nn::make_optimizer("lbfgs", {param()}, 0.1), xg::ValueError);
}

BOOST_AUTO_TEST_SUITE_END()

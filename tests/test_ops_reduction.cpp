// ops/reduction: sum, mean, var, std, prod, max, min, argmax, argmin, logsumexp over all or given
// axes with keepdim. Values against a plain reduction loop; conventions at ties, zeros and NaN.
#include <algorithm>
#include <limits>
#include <set>

#include "ops_test_util.hpp"

using namespace xgt;
using xg::Tensor;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Independent reference: every input element is folded into its output slot in row-major order.
struct Reduced {
    std::vector<std::vector<double>> groups;  // the elements of each output slot, in order
    xg::Shape shape;
};
Reduced ref_groups(const Tensor& x, std::vector<std::int64_t> axes, bool keepdim) {
    const xg::Shape& s = x.shape();
    const auto nd = static_cast<std::int64_t>(s.size());
    std::set<std::int64_t> red;
    if (axes.empty())
        for (std::int64_t i = 0; i < nd; ++i) red.insert(i);
    for (auto a : axes) red.insert(a < 0 ? a + nd : a);
    Reduced r;
    for (std::int64_t i = 0; i < nd; ++i) {
        if (!red.count(i))
            r.shape.push_back(s[i]);
        else if (keepdim)
            r.shape.push_back(1);
    }
    std::int64_t n_out = 1;
    for (std::int64_t i = 0; i < nd; ++i)
        if (!red.count(i)) n_out *= s[i];
    r.groups.assign(static_cast<std::size_t>(n_out), {});
    const auto v = x.to_vector<double>();
    for (std::size_t flat = 0; flat < v.size(); ++flat) {
        std::int64_t rem = static_cast<std::int64_t>(flat), out = 0, stride = 1;
        for (std::int64_t i = nd; i-- > 0;) {
            const std::int64_t idx = rem % s[i];
            rem /= s[i];
            if (!red.count(i)) {
                out += idx * stride;
                stride *= s[i];
            }
        }
        r.groups[static_cast<std::size_t>(out)].push_back(v[flat]);
    }
    return r;
}

std::vector<double> fold(const Reduced& r, const std::function<double(const std::vector<double>&)>& f) {
    std::vector<double> out;
    for (const auto& g : r.groups) out.push_back(f(g));
    return out;
}

double ref_sum(const std::vector<double>& g) {
    double s = 0;
    for (double v : g) s += v;
    return s;
}
double ref_mean(const std::vector<double>& g) { return ref_sum(g) / static_cast<double>(g.size()); }
double ref_var(const std::vector<double>& g, double correction) {
    const double m = ref_mean(g);
    double s = 0;
    for (double v : g) s += (v - m) * (v - m);
    return s / (static_cast<double>(g.size()) - correction);
}
double ref_prod(const std::vector<double>& g) {
    double p = 1;
    for (double v : g) p *= v;
    return p;
}
double ref_max(const std::vector<double>& g) { return *std::max_element(g.begin(), g.end()); }
double ref_min(const std::vector<double>& g) { return *std::min_element(g.begin(), g.end()); }
double ref_lse(const std::vector<double>& g) {
    double s = 0;
    for (double v : g) s += std::exp(v);
    return std::log(s);
}

struct AxesCase {
    xg::Shape shape;
    std::vector<std::int64_t> axes;
};
const std::vector<AxesCase>& axes_cases() {
    static const std::vector<AxesCase> c = {
        {{2, 3, 4}, {}},     {{2, 3, 4}, {0}},    {{2, 3, 4}, {1}},       {{2, 3, 4}, {-1}},
        {{2, 3, 4}, {0, 2}}, {{2, 3, 4}, {0, 1}}, {{2, 3, 4}, {2, 0, 1}}, {{}, {}},
        {{1}, {0}},          {{5}, {}},           {{3, 1}, {1}},
    };
    return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_reduction)

BOOST_AUTO_TEST_CASE(hand_computed_values) {
    const Tensor x = xg::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, xg::f64);
    check_values(xg::sum(x), {21});
    check_values(xg::sum(x, {0}), {5, 7, 9});
    check_values(xg::sum(x, {1}), {6, 15});
    check_meta(xg::sum(x, {1}, true), {2, 1}, xg::f64);
    check_values(xg::mean(x, {0}), {2.5, 3.5, 4.5});
    check_values(xg::var(x, {1}), {1, 1});
    check_values(xg::var(x, {1}, 0), {2.0 / 3, 2.0 / 3});
    check_values(xg::std(x), {std::sqrt(3.5)});
    check_values(xg::prod(x, {0}), {4, 10, 18});
    check_values(xg::max(x, {0}), {4, 5, 6});
    check_values(xg::min(x, {1}), {1, 4});
    check_values(xg::argmax(x), {5});
    check_values(xg::argmin(x, 1), {0, 0});
    check_values(xg::logsumexp(x, {1}),
                 {std::log(std::exp(1) + std::exp(2) + std::exp(3)), std::log(std::exp(4) + std::exp(5) + std::exp(6))},
                 1e-15);
    check_meta(xg::sum(x), {}, xg::f64);
    check_meta(xg::max(x, {}, true), {1, 1}, xg::f64);
}

BOOST_AUTO_TEST_CASE(values_match_a_plain_loop_over_axes) {
    xg::manual_seed(21);
    for (const auto& c : axes_cases()) {
        for (bool keepdim : {false, true}) {
            BOOST_TEST_CONTEXT(xg::shape_str(c.shape) << " axes " << xg::shape_str(c.axes) << " keepdim " << keepdim) {
                const Tensor x = xg::uniform(c.shape, 0.5, 2.0, xg::f64);
                const Reduced r = ref_groups(x, c.axes, keepdim);
                auto check = [&](const Tensor& y, auto f) {
                    check_meta(y, r.shape, xg::f64);
                    check_values(y, fold(r, f), 1e-13, 1e-13);
                };
                check(xg::sum(x, c.axes, keepdim), ref_sum);
                check(xg::mean(x, c.axes, keepdim), ref_mean);
                check(xg::var(x, c.axes, 0, keepdim), [](const auto& g) { return ref_var(g, 0); });
                check(xg::std(x, c.axes, 0, keepdim), [](const auto& g) { return std::sqrt(ref_var(g, 0)); });
                check(xg::prod(x, c.axes, keepdim), ref_prod);
                check(xg::max(x, c.axes, keepdim), ref_max);
                check(xg::min(x, c.axes, keepdim), ref_min);
                check(xg::logsumexp(x, c.axes, keepdim), ref_lse);
                if (x.numel() > 1) check(xg::var(x, c.axes, 1, keepdim), [](const auto& g) { return ref_var(g, 1); });
                // float32 agrees to float32 precision.
                const Tensor xf = x.to(xg::f32);
                check_meta(xg::sum(xf, c.axes, keepdim), r.shape, xg::f32);
                check_values(xg::sum(xf, c.axes, keepdim), fold(r, ref_sum), 1e-6, 1e-6);
                check_values(xg::logsumexp(xf, c.axes, keepdim), fold(r, ref_lse), 1e-6, 1e-6);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(large_reductions_match_the_plain_loop) {
    // Above the grain and chunk sizes: leading-axis, trailing-axis, middle-axis and full sums.
    xg::manual_seed(22);
    const Tensor x = xg::randn({64, 50, 40}, xg::f64);
    for (const std::vector<std::int64_t>& axes : {std::vector<std::int64_t>{}, {0}, {1}, {2}, {0, 1}, {1, 2}, {0, 2}}) {
        BOOST_TEST_CONTEXT("axes " << xg::shape_str(axes)) {
            const Reduced r = ref_groups(x, axes, false);
            check_values(xg::sum(x, axes), fold(r, ref_sum), 1e-12, 1e-12);
            check_values(xg::max(x, axes), fold(r, ref_max), 0, 0);
            check_values(xg::logsumexp(x, axes), fold(r, ref_lse), 1e-13, 1e-13);
        }
    }
    const Tensor big = xg::full({1000000}, 0.5, xg::f32);
    BOOST_TEST(xg::sum(big).item<double>() == 500000.0);
}

BOOST_AUTO_TEST_CASE(gradcheck_and_gradgradcheck_over_axes) {
    xg::manual_seed(23);
    for (const auto& c : axes_cases()) {
        for (bool keepdim : {false, true}) {
            BOOST_TEST_CONTEXT(xg::shape_str(c.shape) << " axes " << xg::shape_str(c.axes) << " keepdim " << keepdim) {
                const Tensor x = rleaf(c.shape, 0.5, 2.0);
                const auto axes = c.axes;
                // Each op as a named function (a lambda capture list would split the macro arguments).
                const auto sum_f = [=](const Inputs& in) { return xg::sum(in[0], axes, keepdim); };
                const auto mean_f = [=](const Inputs& in) { return xg::mean(in[0], axes, keepdim); };
                const auto prod_f = [=](const Inputs& in) { return xg::prod(in[0], axes, keepdim); };
                const auto max_f = [=](const Inputs& in) { return xg::max(in[0], axes, keepdim); };
                const auto min_f = [=](const Inputs& in) { return xg::min(in[0], axes, keepdim); };
                const auto lse_f = [=](const Inputs& in) { return xg::logsumexp(in[0], axes, keepdim); };
                const auto var_f = [=](const Inputs& in) { return xg::var(in[0], axes, 1, keepdim); };
                const auto std_f = [=](const Inputs& in) { return xg::std(in[0], axes, 0, keepdim); };
                XGT_CHECK_GRADS(sum_f, {x});
                XGT_CHECK_GRADS(mean_f, {x});
                XGT_CHECK_GRADS(prod_f, {x});
                XGT_CHECK_GRADS(max_f, {x});
                XGT_CHECK_GRADS(min_f, {x});
                XGT_CHECK_GRADS(lse_f, {x});
                if (x.numel() > 1) {
                    XGT_CHECK_GRADS(var_f, {x});
                    XGT_CHECK_GRADS(std_f, {x});
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(third_derivatives) {
    xg::manual_seed(27);
    const Tensor x = rleaf({2, 3}, 0.5, 2.0);
    const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
        {"sum", [](const Tensor& t) { return xg::square(xg::sum(t, {1})); }},
        {"mean", [](const Tensor& t) { return xg::exp(xg::mean(t, {0})); }},
        {"var", [](const Tensor& t) { return xg::var(t, {1}); }},
        {"std", [](const Tensor& t) { return xg::std(t, {0}); }},
        {"prod", [](const Tensor& t) { return xg::prod(t, {1}); }},
        {"max", [](const Tensor& t) { return xg::square(xg::max(t, {1})); }},
        {"min", [](const Tensor& t) { return xg::square(xg::min(t)); }},
        {"logsumexp", [](const Tensor& t) { return xg::logsumexp(t, {1}); }},
    };
    for (const auto& [name, op] : ops) {
        BOOST_TEST_CONTEXT(name) {
            const auto g = gradient_of([op = op](const Inputs& in) { return op(in[0]); });
            XGT_CHECK_GRADS(g, {x});
        }
    }
    // prod with zeros: the exact product-of-others is differentiable to any order.
    const auto gp = gradient_of([](const Inputs& in) { return xg::prod(in[0], {1}); });
    XGT_CHECK_GRADS(gp, {leaf({0, 0, 2, 0, 3, 4, 1, 2, 3}, {3, 3})});
}

BOOST_AUTO_TEST_CASE(zero_size_reductions) {
    const Tensor e = xg::zeros({0, 3}, xg::f64);
    check_values(xg::sum(e), {0});
    check_values(xg::sum(e, {0}), {0, 0, 0});
    check_meta(xg::sum(e, {1}), {0}, xg::f64);
    check_values(xg::prod(e, {0}), {1, 1, 1});
    check_values(xg::mean(e), {NAN});  // 0/0 as PyTorch
    check_values(xg::logsumexp(e, {0}), {-kInf, -kInf, -kInf});
    check_meta(xg::max(e, {1}), {0}, xg::f64);  // reduces non-empty rows of which there are none
    // Gradients through zero-size reductions are zero-size.
    xg::manual_seed(24);
    for (const xg::Shape& s : {xg::Shape{0, 3}, xg::Shape{2, 0}}) {
        const Tensor x = rleaf(s);
        XGT_CHECK_GRADS([](const Inputs& in) { return xg::sum(in[0], {0}); }, {x});
        XGT_CHECK_GRADS([](const Inputs& in) { return xg::logsumexp(in[0], {1}); }, {x});
        XGT_CHECK_GRADS([](const Inputs& in) { return xg::prod(in[0], {0}, true); }, {x});
    }
}

BOOST_AUTO_TEST_CASE(empty_max_min_argmax_throw) {
    const Tensor e = xg::zeros({0, 3});
    BOOST_CHECK_EXCEPTION(xg::max(e), xg::ValueError, msg_has({"max", "[0,3]", "empty"}));
    BOOST_CHECK_EXCEPTION(xg::min(e, {0}), xg::ValueError, msg_has({"min", "[0,3]", "empty"}));
    BOOST_CHECK_EXCEPTION(xg::argmax(e), xg::ValueError, msg_has({"argmax", "[0,3]"}));
    BOOST_CHECK_EXCEPTION(xg::argmin(e, 0), xg::ValueError, msg_has({"argmin", "[0,3]"}));
    check_meta(xg::argmax(e, 1), {0}, xg::i64);
}

BOOST_AUTO_TEST_CASE(axis_errors_name_the_op) {
    const Tensor x = xg::zeros({2, 3});
    BOOST_CHECK_EXCEPTION(xg::sum(x, {2}), xg::IndexError, msg_has({"sum", "axis 2", "2-d"}));
    BOOST_CHECK_EXCEPTION(xg::mean(x, {-3}), xg::IndexError, msg_has({"mean", "axis -3"}));
    BOOST_CHECK_EXCEPTION(xg::max(x, {0, 0}), xg::IndexError, msg_has({"max", "repeated"}));
    BOOST_CHECK_EXCEPTION(xg::sum(x, {1, -1}), xg::IndexError, msg_has({"sum", "repeated"}));
    BOOST_CHECK_EXCEPTION(xg::argmax(x, 5), xg::IndexError, msg_has({"argmax", "axis 5"}));
    BOOST_CHECK_EXCEPTION(xg::logsumexp(x, {7}), xg::IndexError, msg_has({"logsumexp", "axis 7"}));
    BOOST_CHECK_EXCEPTION(xg::var(x, {9}), xg::IndexError, msg_has({"var", "axis 9"}));
    BOOST_CHECK_EXCEPTION(xg::prod(x, {-9}), xg::IndexError, msg_has({"prod", "axis -9"}));
    BOOST_CHECK_EXCEPTION(xg::sum(xg::scalar(1), {1}), xg::IndexError, msg_has({"sum", "axis 1", "0-d"}));
}

BOOST_AUTO_TEST_CASE(dtypes) {
    const Tensor i = xg::tensor_i64({1, 2, 3, 4}, {2, 2});
    check_meta(xg::sum(i), {}, xg::i64);
    BOOST_TEST(xg::sum(i).item<std::int64_t>() == 10);
    check_values(xg::sum(i, {0}), {4, 6});
    check_values(xg::prod(i), {24});
    check_values(xg::max(i, {1}), {2, 4});
    check_meta(xg::max(i), {}, xg::i64);
    check_values(xg::argmax(i, 0), {1, 1});
    BOOST_CHECK_EXCEPTION(xg::mean(i), xg::DtypeError, msg_has({"mean", "int64"}));
    BOOST_CHECK_EXCEPTION(xg::var(i), xg::DtypeError, msg_has({"var", "int64"}));
    BOOST_CHECK_EXCEPTION(xg::std(i), xg::DtypeError, msg_has({"std", "int64"}));
    BOOST_CHECK_EXCEPTION(xg::logsumexp(i), xg::DtypeError, msg_has({"logsumexp", "int64"}));
    check_meta(xg::mean(xg::ones({3}, xg::f32)), {}, xg::f32);
}

BOOST_AUTO_TEST_CASE(max_min_ties_split_the_gradient_like_amax) {
    Tensor x = leaf({3, 1, 3, 2, 2, 2}, {2, 3});
    xg::sum(xg::max(x, {1})).backward();
    check_values(x.grad(), {0.5, 0, 0.5, 1.0 / 3, 1.0 / 3, 1.0 / 3});
    x.zero_grad();
    xg::min(x).backward();
    check_values(x.grad(), {0, 1, 0, 0, 0, 0});
    x.zero_grad();
    xg::max(x).backward();
    check_values(x.grad(), {0.5, 0, 0.5, 0, 0, 0});
    // NaN propagates into the value, as in PyTorch.
    check_values(xg::max(xg::tensor({1, NAN, 3}, {3}, xg::f64)), {NAN});
    check_values(xg::min(xg::tensor({NAN, 1}, {2}, xg::f64)), {NAN});
    check_values(xg::max(xg::tensor({-kInf, -kInf}, {2}, xg::f64)), {-kInf});
}

BOOST_AUTO_TEST_CASE(argmax_argmin_conventions) {
    const Tensor x = xg::tensor({1, 5, 5, 0, -2, 0}, {2, 3}, xg::f64);
    check_values(xg::argmax(x), {1});  // first occurrence in the flattened tensor
    check_values(xg::argmin(x), {4});
    check_values(xg::argmax(x, 1), {1, 0});
    check_values(xg::argmin(x, -1), {0, 1});
    check_values(xg::argmax(x, 0), {0, 0, 0});
    check_meta(xg::argmax(x, 1, true), {2, 1}, xg::i64);
    check_meta(xg::argmax(x, std::nullopt, true), {1, 1}, xg::i64);
    check_meta(xg::argmax(x), {}, xg::i64);
    // NaN counts as the maximum (and the minimum), as in PyTorch.
    check_values(xg::argmax(xg::tensor({1, NAN, 7}, {3}, xg::f64)), {1});
    check_values(xg::argmin(xg::tensor({1, -3, NAN}, {3}, xg::f64)), {2});
    check_values(xg::argmax(xg::scalar(4.0)), {0});
    check_values(xg::argmax(xg::scalar(4.0), 0), {0});
    Tensor r = leaf({1, 2}, {2});
    BOOST_TEST(!xg::argmax(r).requires_grad());
    // Long rows take the parallel path.
    xg::manual_seed(25);
    const Tensor big = xg::randn({300, 1000}, xg::f32);
    const auto v = big.to_vector<float>();
    const auto am = xg::argmax(big, 1).to_vector<std::int64_t>();
    for (std::size_t i = 0; i < 300; i += 37) {
        const auto row = v.begin() + static_cast<std::ptrdiff_t>(i * 1000);
        BOOST_TEST(am[i] == std::max_element(row, row + 1000) - row);
    }
}

BOOST_AUTO_TEST_CASE(prod_gradient_with_zeros) {
    // d prod / dx_i = product of the others: exact with one zero, zero with two.
    Tensor x = leaf({2, 0, 3, 0, 0, 5, 4, 1, 2}, {3, 3});
    xg::sum(xg::prod(x, {1})).backward();
    check_values(x.grad(), {0, 6, 0, 0, 0, 0, 2, 8, 4});
    // Multilinear, so central differences are exact even at the zeros: gradcheck them.
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::prod(in[0], {1}); }, {leaf({2, 0, 3, 0, 0, 5, 4, 1, 2}, {3, 3})});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::prod(in[0]); }, {leaf({0.5, 0, -3, 1.5}, {4})});
}

BOOST_AUTO_TEST_CASE(var_std_conventions) {
    // One element with correction 1: 0/0 = NaN (PyTorch); std of a constant has gradient 0 (PyTorch).
    check_values(xg::var(xg::tensor({3}, {1}, xg::f64)), {NAN});
    Tensor c = leaf({2, 2, 2}, {3});
    const Tensor s = xg::std(c);
    check_values(s, {0});
    s.backward();
    check_values(c.grad(), {0, 0, 0});
    // Second derivative of std at a constant input stays finite.
    Tensor c2 = leaf({2, 2, 2}, {3});
    const auto g = xg::grad({xg::std(c2)}, {c2}, {}, true, true);
    const auto gg = xg::grad({xg::sum(g[0])}, {c2}, {}, false, false, true);
    if (gg[0].defined())
        for (double v : gg[0].to_vector<double>()) BOOST_TEST(std::isfinite(v));
    // Hand-computed var gradient: d var/dx_i = 2 (x_i - mean) / (n - 1).
    Tensor x = leaf({1, 2, 6}, {3});
    xg::var(x).backward();
    check_values(x.grad(), {-2, -1, 3});
    // Larger data in float32 against the two-pass formula.
    xg::manual_seed(26);
    const Tensor big = xg::normal({100000}, 3.0, 2.0, xg::f32);
    const auto v = big.to_vector<double>();
    const double ref = std::sqrt(ref_var(v, 1));
    BOOST_TEST(xg::std(big).item<double>() == ref, boost::test_tools::tolerance(1e-4));
}

BOOST_AUTO_TEST_CASE(logsumexp_is_stable) {
    const Tensor x = xg::tensor({1e4, 1e4 - 1, -1e4, 0}, {2, 2}, xg::f64);
    check_values(xg::logsumexp(x, {1}), {1e4 + std::log1p(std::exp(-1.0)), std::log1p(std::exp(-1e4))}, 1e-15);
    check_values(xg::logsumexp(xg::tensor({1e4, 1e4}, {2}, xg::f32)), {1e4 + std::log(2.0)}, 1e-7);
    check_values(xg::logsumexp(xg::tensor({-kInf, -kInf}, {2}, xg::f64)), {-kInf});
    check_values(xg::logsumexp(xg::tensor({kInf, 1}, {2}, xg::f64)), {kInf});
    check_values(xg::logsumexp(xg::tensor({88, -88, 20, -20}, {4}, xg::f32)), {88 + std::log1p(std::exp(-68.0))}, 1e-7);
    // Gradient = softmax, also at 1e4.
    Tensor l = leaf({1e4, 1e4 - 1, 1e4 - 2}, {3});
    xg::logsumexp(l).backward();
    const double z = 1 + std::exp(-1.0) + std::exp(-2.0);
    check_values(l.grad(), {1 / z, std::exp(-1.0) / z, std::exp(-2.0) / z}, 1e-14);
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::logsumexp(in[0], {0}); },
                    {leaf({1e4, 1e4 + 1, -20, 20}, {2, 2})});
}

BOOST_AUTO_TEST_CASE(reductions_record_nothing_under_no_grad) {
    Tensor x = leaf({1, 2}, {2});
    xg::NoGradGuard ng;
    BOOST_TEST(!xg::sum(x).requires_grad());
    BOOST_TEST(!xg::max(x).requires_grad());
    BOOST_TEST(!xg::prod(x).requires_grad());
    BOOST_TEST(!xg::logsumexp(x).requires_grad());
}

BOOST_AUTO_TEST_SUITE_END()

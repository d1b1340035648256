// ops/arithmetic: binary ops with broadcasting, scalars on either side, dtype promotion, pow,
// maximum/minimum, clamp, where, comparisons. Values against a plain broadcasting loop.
#include <limits>

#include "ops_test_util.hpp"

using namespace xgt;
using xg::Tensor;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Independent reference: NumPy broadcasting written as a plain loop over output indices.
struct Ref {
    std::vector<double> values;
    xg::Shape shape;
};
Ref ref_binary(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
    const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
    const xg::Shape& sa = a.shape();
    const xg::Shape& sb = b.shape();
    const std::size_t nd = std::max(sa.size(), sb.size());
    auto dim = [nd](const xg::Shape& s, std::size_t i) { return i < nd - s.size() ? 1 : s[i - (nd - s.size())]; };
    Ref r;
    for (std::size_t i = 0; i < nd; ++i) r.shape.push_back(dim(sa, i) == 1 ? dim(sb, i) : dim(sa, i));
    std::int64_t total = 1;
    for (auto d : r.shape) total *= d;
    for (std::int64_t flat = 0; flat < total; ++flat) {
        std::int64_t rem = flat, ia = 0, ib = 0, stride_a = 1, stride_b = 1;
        for (std::size_t i = nd; i-- > 0;) {
            const std::int64_t idx = rem % r.shape[i];
            rem /= r.shape[i];
            if (dim(sa, i) != 1) ia += idx * stride_a;
            if (dim(sb, i) != 1) ib += idx * stride_b;
            stride_a *= dim(sa, i);
            stride_b *= dim(sb, i);
        }
        r.values.push_back(f(av[ia], bv[ib]));
    }
    return r;
}

const std::vector<std::pair<xg::Shape, xg::Shape>>& shape_pairs() {
    static const std::vector<std::pair<xg::Shape, xg::Shape>> p = {
        {{2, 3}, {2, 3}},    {{2, 3}, {3}}, {{}, {2}},     {{}, {}},  {{1, 3}, {2, 1}},
        {{2, 1, 3}, {4, 1}}, {{0, 3}, {3}}, {{2, 0}, {1}}, {{1}, {}},
    };
    return p;
}

struct BinaryCase {
    const char* name;
    Tensor (*op)(const Tensor&, const Tensor&);
    double (*ref)(double, double);
    double lo, hi;  // input range for value and gradient checks
};

const std::vector<BinaryCase>& binary_cases() {
    static const std::vector<BinaryCase> c = {
        {"add", xg::add, [](double x, double y) { return x + y; }, -2, 2},
        {"sub", xg::sub, [](double x, double y) { return x - y; }, -2, 2},
        {"mul", xg::mul, [](double x, double y) { return x * y; }, -2, 2},
        {"div", xg::div, [](double x, double y) { return x / y; }, 0.5, 2},
        {"pow", xg::pow, [](double x, double y) { return std::pow(x, y); }, 0.5, 2},
        {"maximum", xg::maximum, [](double x, double y) { return std::max(x, y); }, -2, 2},
        {"minimum", xg::minimum, [](double x, double y) { return std::min(x, y); }, -2, 2},
    };
    return c;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_arithmetic)

BOOST_AUTO_TEST_CASE(hand_computed_values) {
    const Tensor a = xg::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, xg::f64);
    const Tensor b = xg::tensor({10, 20, 30}, {3}, xg::f64);
    check_values(a + b, {11, 22, 33, 14, 25, 36});
    check_values(a - b, {-9, -18, -27, -6, -15, -24});
    check_values(a * b, {10, 40, 90, 40, 100, 180});
    check_values(b / a, {10, 10, 10, 2.5, 4, 5});
    check_values(-a, {-1, -2, -3, -4, -5, -6});
    check_values(xg::pow(a, 2.0), {1, 4, 9, 16, 25, 36});
    check_values(xg::pow(2.0, a), {2, 4, 8, 16, 32, 64});
    check_values(xg::pow(b, xg::tensor({1.0, 0.5, 0.0}, {3}, xg::f64)), {10, std::sqrt(20.0), 1});
    const Tensor col = xg::tensor({1, 2}, {2, 1}, xg::f64);
    check_meta(col + b, {2, 3}, xg::f64);
    check_values(col * b, {10, 20, 30, 20, 40, 60});
}

BOOST_AUTO_TEST_CASE(scalar_operand_on_either_side) {
    const Tensor x = xg::tensor({1, -2, 4}, {3}, xg::f64);
    check_values(x + 2.0, {3, 0, 6});
    check_values(2.0 + x, {3, 0, 6});
    check_values(x - 2.0, {-1, -4, 2});
    check_values(2.0 - x, {1, 4, -2});
    check_values(x * 3.0, {3, -6, 12});
    check_values(3.0 * x, {3, -6, 12});
    check_values(x / 2.0, {0.5, -1, 2});
    check_values(2.0 / x, {2, -1, 0.5});
    // Gradients of each form, by hand.
    Tensor v = leaf({2.0}, {});
    (10.0 / v - v / 4.0 + 3.0 * v - (1.0 - v) + (v + 1.0) * 2.0).backward();
    // d/dv: -10/v^2 - 1/4 + 3 + 1 + 2 = -2.5 + 5.75 = 3.25
    check_values(v.grad(), {3.25});
}

BOOST_AUTO_TEST_CASE(values_match_a_plain_broadcasting_loop) {
    xg::manual_seed(11);
    for (const auto& c : binary_cases()) {
        for (const auto& [sa, sb] : shape_pairs()) {
            BOOST_TEST_CONTEXT(c.name << " " << xg::shape_str(sa) << " with " << xg::shape_str(sb)) {
                for (auto dt : {xg::f64, xg::f32}) {
                    const Tensor a = xg::uniform(sa, c.lo, c.hi, dt), b = xg::uniform(sb, c.lo, c.hi, dt);
                    const Ref r = ref_binary(a, b, c.ref);
                    const Tensor y = c.op(a, b);
                    check_meta(y, r.shape, dt);
                    check_values(y, r.values, dt == xg::f64 ? 1e-15 : 1e-6, 0);
                    // Swapped operands broadcast the other way round.
                    const Ref rs = ref_binary(b, a, c.ref);
                    check_values(c.op(b, a), rs.values, dt == xg::f64 ? 1e-15 : 1e-6, 0);
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(large_broadcasts_take_the_parallel_path) {
    // Above the grain size every broadcasting branch (same shape, scalar, rows, strided) runs on TBB.
    xg::manual_seed(12);
    const std::vector<std::pair<xg::Shape, xg::Shape>> pairs = {
        {{300, 700}, {300, 700}}, {{300, 700}, {}},     {{}, {300, 700}},         {{300, 700}, {700}},
        {{300, 700}, {300, 1}},   {{300, 1}, {1, 700}}, {{3, 100, 700}, {100, 1}}};
    for (const auto& [sa, sb] : pairs) {
        BOOST_TEST_CONTEXT(xg::shape_str(sa) << " with " << xg::shape_str(sb)) {
            const Tensor a = xg::randn(sa, xg::f64), b = xg::randn(sb, xg::f64);
            // (x + y) * y: no multiply-add the compiler could contract into an FMA in the reference.
            const Ref r = ref_binary(a, b, [](double x, double y) { return (x + y) * y; });
            const auto got = ((a + b) * b).to_vector<double>();
            BOOST_REQUIRE_EQUAL(got.size(), r.values.size());
            std::size_t bad = 0;
            for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] != r.values[i];
            BOOST_TEST(bad == 0u);
        }
    }
}

BOOST_AUTO_TEST_CASE(gradcheck_and_gradgradcheck_with_broadcasting) {
    xg::manual_seed(13);
    for (const auto& c : binary_cases()) {
        for (const auto& [sa, sb] : shape_pairs()) {
            BOOST_TEST_CONTEXT(c.name << " " << xg::shape_str(sa) << " with " << xg::shape_str(sb)) {
                const Tensor a = rleaf(sa, c.lo, c.hi), b = rleaf(sb, c.lo, c.hi);
                auto fn = [op = c.op](const Inputs& in) { return op(in[0], in[1]); };
                XGT_CHECK_GRADS(fn, {a, b});
                // One operand without requires_grad gets no gradient.
                XG_CHECK_GRAD(fn, {a, b.detach()});
                XG_CHECK_GRADGRAD(fn, {a.detach(), b});
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(third_derivatives) {
    xg::manual_seed(14);
    for (const auto& c : binary_cases()) {
        BOOST_TEST_CONTEXT(c.name) {
            const Tensor a = rleaf({2, 3}, c.lo, c.hi), b = rleaf({3}, c.lo, c.hi);
            const auto g = gradient_of([op = c.op](const Inputs& in) { return op(in[0], in[1]); });
            XGT_CHECK_GRADS(g, {a, b});
        }
    }
    const auto pow_scalar = gradient_of([](const Inputs& in) { return xg::pow(in[0], 3.5) + xg::pow(1.7, in[0]); });
    XGT_CHECK_GRADS(pow_scalar, {rleaf({4}, 0.5, 2.0)});
    const auto clamp_where = gradient_of([](const Inputs& in) {
        return xg::clamp(in[0] * in[0], 0.1, 0.5) * xg::where(xg::gt(in[0], xg::scalar(0.0, xg::f64)), in[0], -in[0]);
    });
    XGT_CHECK_GRADS(clamp_where, {leaf({-0.9, -0.5, 0.2, 0.6, 0.95}, {5})});
}

BOOST_AUTO_TEST_CASE(gradcheck_scalar_forms_and_neg) {
    const Tensor x = leaf({0.7, -1.3, 2.1, 1e-8, 20.0, -20.0}, {2, 3});
    XGT_CHECK_GRADS([](const Inputs& in) { return -in[0] + 2.0 * in[0] - in[0] / 4.0 + (1.5 - in[0]) * 3.0; }, {x});
    XGT_CHECK_GRADS([](const Inputs& in) { return 3.0 / (in[0] * in[0] + 1.0); }, {x});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::pow(in[0], 2.0); }, {x});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::pow(in[0], 3.0); }, {x});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::pow(in[0], -1.0); }, {leaf({0.5, -2.0, 88.0}, {3})});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::pow(in[0], 0.5); }, {leaf({0.5, 2.0, 88.0}, {3})});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::pow(2.0, in[0]); }, {x});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::pow(in[0], 0.0); }, {x});
}

BOOST_AUTO_TEST_CASE(one_node_used_twice) {
    // y = x*x + x*(x+1) with x used four times: dy/dx = 2x + 2x + 1 = 4x + 1.
    Tensor x = leaf({3.0, -0.5}, {2});
    const Tensor y = x * x + x * (x + 1.0);
    check_values(y, {21.0, 0.0});
    xg::sum(y).backward();
    check_values(x.grad(), {13.0, -1.0});
    // And a shared intermediate: h = exp(x) used twice, z = h*h = e^(2x): dz/dx = 2 e^(2x).
    Tensor w = leaf({0.25}, {});
    const Tensor h = xg::exp(w);
    (h * h).backward();
    check_values(w.grad(), {2 * std::exp(0.5)}, 1e-15);
}

BOOST_AUTO_TEST_CASE(dtype_promotion) {
    const Tensor f = xg::tensor({1.5, 2.5}, {2}, xg::f32);
    const Tensor d = xg::tensor({1.0, 2.0}, {2}, xg::f64);
    const Tensor i = xg::tensor_i64({3, -4}, {2});
    for (const auto& c : binary_cases()) {
        BOOST_TEST_CONTEXT(c.name) {
            BOOST_TEST(c.op(f, d).dtype() == xg::f64);
            BOOST_TEST(c.op(d, f).dtype() == xg::f64);
            BOOST_TEST(c.op(f, f).dtype() == xg::f32);
            if (std::string(c.name) != "pow") {
                BOOST_TEST(c.op(i, f).dtype() == xg::f32);
                BOOST_TEST(c.op(d, i).dtype() == xg::f64);
            }
        }
    }
    // int64 with int64 stays int64, except true division (float32, as in PyTorch).
    check_meta(i + i, {2}, xg::i64);
    check_values(i * i - i, {6, 20});
    check_meta(i / i, {2}, xg::f32);
    check_values(i / xg::tensor_i64({2, 8}, {2}), {1.5, -0.5});
    check_meta(xg::maximum(i, xg::tensor_i64({0}, {1})), {2}, xg::i64);
    // Scalars take the tensor's dtype; a fractional scalar makes an int64 tensor float32.
    BOOST_TEST((f * 2.0).dtype() == xg::f32);
    BOOST_TEST((i + 2.0).dtype() == xg::i64);
    check_values(i + 2.0, {5, -2});
    BOOST_TEST((i * 0.5).dtype() == xg::f32);
    check_values(i * 0.5, {1.5, -2});
    // Gradients come back in each input's own dtype.
    Tensor a = xg::tensor({1.0, 2.0}, {2}, xg::f32).requires_grad_();
    Tensor b = xg::tensor({3.0, 4.0}, {2}, xg::f64).requires_grad_();
    xg::sum(a * b).backward();
    check_meta(a.grad(), {2}, xg::f32);
    check_meta(b.grad(), {2}, xg::f64);
    check_values(a.grad(), {3, 4});
    check_values(b.grad(), {1, 2});
}

BOOST_AUTO_TEST_CASE(pow_conventions_at_zero) {
    // d/da a^b = b a^(b-1) is 0 where b == 0 (even at a == 0); d/db a^b = a^b log a is 0 at a == 0.
    Tensor a = leaf({0.0, 0.0, 2.0, 0.0}, {4});
    Tensor b = leaf({0.0, 2.0, 0.0, 0.5}, {4});
    const Tensor y = xg::pow(a, b);
    check_values(y, {1, 0, 1, 0});
    xg::sum(y).backward();
    check_values(a.grad(), {0, 0, 0, kInf});
    check_values(b.grad(), {0, 0, std::log(2.0), 0});
    Tensor z = leaf({0.0, 3.0}, {2});
    xg::sum(xg::pow(z, 0.0)).backward();
    check_values(z.grad(), {0, 0});
    z.zero_grad();
    xg::sum(xg::pow(z, 2.0)).backward();
    check_values(z.grad(), {0, 6});
    z.zero_grad();
    xg::sum(xg::pow(0.0, z)).backward();  // 0^z: d/dz taken as 0
    check_values(z.grad(), {0, 0});
    // Negative base with a fractional exponent is NaN, as in IEEE.
    check_values(xg::pow(xg::tensor({-8.0}, {1}, xg::f64), 1.0 / 3.0), {NAN});
    // Second derivative at a == 0 with b requiring grad stays finite (safe log).
    Tensor p = leaf({0.0, 1.5}, {2}), q = leaf({2.0, 2.0}, {2});
    const auto g = xg::grad({xg::sum(xg::pow(p, q))}, {q}, {}, true, true);
    const auto gg = xg::grad({xg::sum(g[0])}, {p, q}, {}, false, false, true);
    for (double v : gg[0].to_vector<double>()) BOOST_TEST(std::isfinite(v));
    for (double v : gg[1].to_vector<double>()) BOOST_TEST(std::isfinite(v));
}

BOOST_AUTO_TEST_CASE(pow_edge_inputs) {
    const Tensor x = xg::tensor({0.0, 1e-8, -1e-8, 20.0, -20.0, 88.0, -88.0}, {7}, xg::f64);
    std::vector<double> sq, cube;
    for (double v : x.to_vector<double>()) sq.push_back(v * v), cube.push_back(v * v * v);
    check_values(xg::pow(x, 2.0), sq, 1e-15, 0);
    check_values(xg::pow(x, 3.0), cube, 1e-15, 0);
    check_values(xg::pow(x.to(xg::f32), 2.0), sq, 1e-6, 0);
}

BOOST_AUTO_TEST_CASE(maximum_minimum_ties_split_the_gradient) {
    Tensor a = leaf({1.0, 2.0, 3.0}, {3});
    Tensor b = leaf({1.0, 5.0, 0.0}, {3});
    const Tensor mx = xg::maximum(a, b), mn = xg::minimum(a, b);
    check_values(mx, {1, 5, 3});
    check_values(mn, {1, 2, 0});
    xg::sum(mx).backward();
    check_values(a.grad(), {0.5, 0, 1});
    check_values(b.grad(), {0.5, 1, 0});
    a.zero_grad(), b.zero_grad();
    xg::sum(mn).backward();
    check_values(a.grad(), {0.5, 1, 0});
    check_values(b.grad(), {0.5, 0, 1});
    // Broadcast tie: a scalar b ties with two elements of a; each tie gives b half.
    Tensor s = leaf({2.0}, {});
    Tensor v = leaf({2.0, 2.0, 1.0}, {3});
    xg::sum(xg::maximum(v, s)).backward();
    check_values(v.grad(), {0.5, 0.5, 0});
    check_values(s.grad(), {2.0});
    // NaN propagates as in PyTorch.
    check_values(xg::maximum(xg::tensor({NAN, 1.0}, {2}, xg::f64), xg::tensor({0.0, NAN}, {2}, xg::f64)), {NAN, NAN});
    check_values(xg::minimum(xg::tensor({NAN}, {1}, xg::f64), xg::tensor({0.0}, {1}, xg::f64)), {NAN});
}

BOOST_AUTO_TEST_CASE(clamp_values_and_gradient_at_bounds) {
    Tensor x = leaf({-2.0, -1.0, 0.0, 1.0, 2.0, NAN}, {6});
    const Tensor y = xg::clamp(x, -1.0, 1.0);
    check_values(y, {-1, -1, 0, 1, 1, NAN});
    xg::sum(y).backward();
    check_values(x.grad(), {0, 1, 1, 1, 0, 0});  // gradient 1 at the bounds, as PyTorch
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::clamp(in[0], -0.5, 0.5); },
                    {leaf({-0.9, -0.2, 0.1, 0.8, 3.0, -20.0}, {2, 3})});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::clamp(in[0], -0.5, 0.5); }, {leaf({0.3}, {})});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::clamp(in[0], -0.5, 0.5); }, {rleaf({0, 2})});
    // One-sided with infinite bounds; int64 input.
    check_values(xg::clamp(xg::tensor({-3.0, 3.0}, {2}, xg::f32), 0.0, kInf), {0, 3});
    const Tensor ci = xg::clamp(xg::tensor_i64({-5, 0, 7}, {3}), -kInf, 2.0);
    check_meta(ci, {3}, xg::i64);
    check_values(ci, {-5, 0, 2});
    check_values(xg::clamp(xg::tensor_i64({-5, 0, 7}, {3}), -1.5, 2.5), {-1, 0, 2});
    BOOST_CHECK_EXCEPTION(xg::clamp(x, 1.0, -1.0), xg::ValueError, msg_has({"clamp", "greater"}));
    BOOST_CHECK_EXCEPTION(xg::clamp(x, NAN, 1.0), xg::ValueError, msg_has({"clamp", "NaN"}));
}

BOOST_AUTO_TEST_CASE(where_values_gradients_and_broadcasting) {
    const Tensor cond = xg::tensor({1, 0, 1}, {3}, xg::f64);
    Tensor a = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor b = leaf({-1}, {});
    const Tensor y = xg::where(cond, a, b);
    check_meta(y, {2, 3}, xg::f64);
    check_values(y, {1, -1, 3, 4, -1, 6});
    xg::sum(y).backward();
    check_values(a.grad(), {1, 0, 1, 1, 0, 1});
    check_values(b.grad(), {2});
    // int64 condition, all 0-d, promotion, zero-size.
    check_values(
        xg::where(xg::tensor_i64({0, 7}, {2}), xg::tensor({1, 2}, {2}, xg::f32), xg::tensor({9}, {1}, xg::f64)),
        {9, 2});
    BOOST_TEST(xg::where(xg::scalar(1), xg::scalar(2), xg::scalar(3, xg::f64)).dtype() == xg::f64);
    check_values(xg::where(xg::scalar(0), xg::scalar(2), xg::scalar(3)), {3});
    check_meta(xg::where(xg::zeros({0, 3}), xg::ones({3}), xg::scalar(0)), {0, 3}, xg::f32);
    xg::manual_seed(3);
    const Tensor c2 = xg::tensor({1, 0}, {2, 1}, xg::f64);
    XGT_CHECK_GRADS([c2](const Inputs& in) { return xg::where(c2, in[0], in[1]) * in[0]; },
                    {rleaf({3}), rleaf({2, 3})});
    XGT_CHECK_GRADS([](const Inputs& in) { return xg::where(xg::scalar(1.0, xg::f64), in[0], in[1]); },
                    {rleaf({}), rleaf({})});
    // The usual safe-log pattern: where(x > 0, log(x), 0) has a finite gradient at x <= 0 only for the
    // chosen branch; the unchosen branch receives exactly 0.
    Tensor x = leaf({2.0, -1.0}, {2});
    xg::sum(xg::where(xg::gt(x, xg::scalar(0.0, xg::f64)), x * 3.0, x * 5.0)).backward();
    check_values(x.grad(), {3, 5});
}

BOOST_AUTO_TEST_CASE(comparisons) {
    const Tensor a = xg::tensor({1, 2, 3, NAN}, {4}, xg::f64);
    const Tensor b = xg::tensor({2}, {}, xg::f64);
    check_values(xg::eq(a, b), {0, 1, 0, 0});
    check_values(xg::ne(a, b), {1, 0, 1, 1});
    check_values(xg::lt(a, b), {1, 0, 0, 0});
    check_values(xg::le(a, b), {1, 1, 0, 0});
    check_values(xg::gt(a, b), {0, 0, 1, 0});
    check_values(xg::ge(a, b), {0, 1, 1, 0});
    // Broadcasting both ways; result dtype is the promoted one; never requires grad.
    const Tensor r = xg::lt(xg::tensor({0, 1}, {2, 1}, xg::f32), xg::tensor({0.5, 1.5, -1}, {3}, xg::f32));
    check_meta(r, {2, 3}, xg::f32);
    check_values(r, {1, 1, 0, 0, 1, 0});
    Tensor g = leaf({1, 2}, {2});
    BOOST_TEST(!xg::gt(g, xg::scalar(1.5, xg::f64)).requires_grad());
    // int64 labels against int64 predictions (accuracy): eq is int64, its sum counts.
    const Tensor pred = xg::tensor_i64({0, 2, 1, 1}, {4}), labels = xg::tensor_i64({0, 1, 1, 1}, {4});
    const Tensor hits = xg::eq(pred, labels);
    check_meta(hits, {4}, xg::i64);
    BOOST_TEST(xg::sum(hits).item<std::int64_t>() == 3);
}

BOOST_AUTO_TEST_CASE(shape_mismatch_names_op_and_shapes) {
    const Tensor a = xg::zeros({2, 3}), b = xg::zeros({4});
    for (const auto& c : binary_cases()) BOOST_TEST_CONTEXT(c.name) {
            BOOST_CHECK_EXCEPTION(c.op(a, b), xg::ShapeError, msg_has({c.name, "[2,3]", "[4]"}));
        }
    BOOST_CHECK_EXCEPTION(a + b, xg::ShapeError, msg_has({"add", "[2,3]", "[4]", "3 vs 4"}));
    BOOST_CHECK_EXCEPTION(xg::where(xg::zeros({5}), a, a), xg::ShapeError, msg_has({"where", "[5]", "[2,3]"}));
    BOOST_CHECK_EXCEPTION(xg::eq(a, b), xg::ShapeError, msg_has({"eq", "[2,3]", "[4]"}));
    BOOST_CHECK_EXCEPTION(xg::zeros({0}) + xg::zeros({2}), xg::ShapeError, msg_has({"add", "[0]", "[2]"}));
}

BOOST_AUTO_TEST_CASE(wrong_dtype_and_undefined_operands) {
    const Tensor i = xg::tensor_i64({1, 2}, {2});
    BOOST_CHECK_EXCEPTION(xg::pow(i, 2.0), xg::DtypeError, msg_has({"pow", "int64"}));
    BOOST_CHECK_EXCEPTION(xg::pow(i, i), xg::DtypeError, msg_has({"pow", "int64"}));
    BOOST_CHECK_EXCEPTION(xg::add(i, Tensor()), xg::ValueError, msg_has({"add", "undefined"}));
    BOOST_CHECK_EXCEPTION(xg::where(Tensor(), i, i), xg::ValueError, msg_has({"where", "undefined"}));
    BOOST_CHECK_EXCEPTION(xg::maximum(Tensor(), i), xg::ValueError, msg_has({"maximum", "undefined"}));
}

BOOST_AUTO_TEST_CASE(division_by_zero_is_ieee_not_a_crash) {
    check_values(xg::tensor({1, -1, 0}, {3}, xg::f64) / 0.0, {kInf, -kInf, NAN});
    check_values(xg::tensor({1}, {1}, xg::f32) / xg::tensor({0}, {1}, xg::f32), {kInf});
    check_values(xg::tensor_i64({1, 0}, {2}) / xg::tensor_i64({0, 0}, {2}), {kInf, NAN});
}

BOOST_AUTO_TEST_SUITE_END()

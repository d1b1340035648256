// ops/factories: tensor, tensor_i64, scalar, zeros, ones, full, *_like, arange, linspace, eye and
// the seeded generator (rand, randn, uniform, normal, randint, randperm, manual_seed).
#include <algorithm>
#include <numeric>
#include <set>

#include "ops_test_util.hpp"

using namespace xgt;
using xg::Tensor;

namespace {

double mean_of(const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}
double std_of(const std::vector<double>& v) {
    const double m = mean_of(v);
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// Every random factory, each drawing 100k values (above the parallel grain size).
std::vector<Tensor> draw_all() {
    return {xg::rand({100000}),
            xg::randn({100000}, xg::f64),
            xg::uniform({300, 400}, -2.0, 3.0),
            xg::normal({100000}, 1.0, 0.5, xg::f64),
            xg::randint(-5, 7, {100000}),
            xg::randperm(100000)};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(factories)

BOOST_AUTO_TEST_CASE(tensor_from_values) {
    const Tensor a = xg::tensor({1, 2, 3, 4, 5, 6}, {2, 3});
    check_meta(a, {2, 3}, xg::f32);
    check_values(a, {1, 2, 3, 4, 5, 6});
    check_meta(xg::tensor({1, 2, 3}), {3}, xg::f32);
    check_meta(xg::tensor(std::vector<double>{1.5, 2.5}, {2, 1}, xg::f64), {2, 1}, xg::f64);
    check_meta(xg::tensor({7}, {}), {}, xg::f32);
    check_meta(xg::tensor(std::vector<double>{}, {0, 2}), {0, 2}, xg::f32);
    const Tensor i = xg::tensor({1.9, -1.9}, {2}, xg::i64);  // converted like static_cast
    check_meta(i, {2}, xg::i64);
    check_values(i, {1, -1});
    const Tensor l = xg::tensor_i64({3, -1, 4}, {3, 1});
    check_meta(l, {3, 1}, xg::i64);
    BOOST_TEST(l.to_vector<std::int64_t>() == (std::vector<std::int64_t>{3, -1, 4}));
    check_meta(xg::tensor_i64({1, 2}), {2}, xg::i64);
    BOOST_TEST(!a.requires_grad());
    BOOST_CHECK_EXCEPTION(xg::tensor({1, 2, 3}, {2, 2}), xg::ShapeError, msg_has({"tensor", "3 values", "[2,2]"}));
    BOOST_CHECK_EXCEPTION(xg::tensor_i64({1, 2, 3}, {2}), xg::ShapeError, msg_has({"tensor_i64", "[2]"}));
    BOOST_CHECK_EXCEPTION(xg::tensor({1, 2}, {-1, 2}), xg::ShapeError, msg_has({"tensor", "[-1,2]"}));
}

BOOST_AUTO_TEST_CASE(constant_factories) {
    check_values(xg::scalar(2.5, xg::f64), {2.5});
    check_meta(xg::scalar(2.5), {}, xg::f32);
    check_meta(xg::scalar(3, xg::i64), {}, xg::i64);
    check_values(xg::zeros({2, 2}), {0, 0, 0, 0});
    check_values(xg::ones({3}, xg::i64), {1, 1, 1});
    check_meta(xg::ones({3}, xg::i64), {3}, xg::i64);
    check_values(xg::full({2}, -1.5, xg::f64), {-1.5, -1.5});
    check_meta(xg::zeros({0, 4}), {0, 4}, xg::f32);
    check_meta(xg::full({}, 1.0), {}, xg::f32);
    // Large: the fill takes the parallel path.
    const auto big = xg::full({1000, 1000}, 0.25).to_vector<float>();
    BOOST_TEST(std::all_of(big.begin(), big.end(), [](float v) { return v == 0.25f; }));
    Tensor like = xg::tensor({1, 2, 3, 4}, {2, 2}, xg::f64).requires_grad_();
    for (const Tensor& t : {xg::zeros_like(like), xg::ones_like(like), xg::full_like(like, 9.0)}) {
        check_meta(t, {2, 2}, xg::f64);
        BOOST_TEST(!t.requires_grad());
    }
    check_values(xg::full_like(like, 9.0), {9, 9, 9, 9});
    check_values(xg::ones_like(xg::tensor_i64({5})), {1});
    BOOST_CHECK_EXCEPTION(xg::zeros({2, -1}), xg::ValueError, msg_has({"[2,-1]", "negative"}));
    BOOST_CHECK_EXCEPTION(xg::full({-3}, 1.0), xg::ValueError, msg_has({"full", "[-3]"}));
}

BOOST_AUTO_TEST_CASE(arange_linspace_eye) {
    check_values(xg::arange(0, 5), {0, 1, 2, 3, 4});
    check_values(xg::arange(1, 2, 0.25, xg::f64), {1, 1.25, 1.5, 1.75});
    check_values(xg::arange(5, 0, -2), {5, 3, 1});
    check_meta(xg::arange(3, 3), {0}, xg::f32);
    check_meta(xg::arange(3, 0), {0}, xg::f32);
    check_meta(xg::arange(0, 4, 1, xg::i64), {4}, xg::i64);
    check_values(xg::arange(0, 1, 0.1, xg::f64),
                 {0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6000000000000001, 0.7000000000000001, 0.8, 0.9});
    BOOST_CHECK_EXCEPTION(xg::arange(0, 1, 0), xg::ValueError, msg_has({"arange", "step"}));
    BOOST_CHECK_EXCEPTION(xg::arange(0, INFINITY), xg::ValueError, msg_has({"arange", "finite"}));
    check_values(xg::linspace(0, 1, 5, xg::f64), {0, 0.25, 0.5, 0.75, 1});
    check_values(xg::linspace(-1, 1, 3), {-1, 0, 1});
    check_values(xg::linspace(2, 7, 1), {2});
    check_meta(xg::linspace(0, 1, 0), {0}, xg::f32);
    BOOST_TEST(xg::linspace(0.1, 0.7, 7, xg::f64).to_vector<double>().back() == 0.7);  // end point exact
    BOOST_CHECK_EXCEPTION(xg::linspace(0, 1, -1), xg::ValueError, msg_has({"linspace", "-1"}));
    check_values(xg::eye(2), {1, 0, 0, 1});
    check_values(xg::eye(2, 3, xg::f64), {1, 0, 0, 0, 1, 0});
    check_values(xg::eye(3, 1), {1, 0, 0});
    check_meta(xg::eye(0), {0, 0}, xg::f32);
    check_meta(xg::eye(2, 2, xg::i64), {2, 2}, xg::i64);
    BOOST_CHECK_EXCEPTION(xg::eye(-2), xg::ValueError, msg_has({"eye", "-2"}));
}

BOOST_AUTO_TEST_CASE(same_seed_same_numbers_at_one_and_two_threads) {
    xg::set_num_threads(1);
    xg::manual_seed(2024);
    const auto one = draw_all();
    xg::set_num_threads(2);
    xg::manual_seed(2024);
    const auto two = draw_all();
    BOOST_REQUIRE_EQUAL(one.size(), two.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
        BOOST_TEST_CONTEXT("factory " << i) {
            check_meta(two[i], one[i].shape(), one[i].dtype());
            BOOST_TEST((bits(one[i]) == bits(two[i])));
        }
    }
    // Another seed gives other numbers; successive calls give other numbers.
    xg::manual_seed(2025);
    BOOST_TEST((bits(xg::rand({100000})) != bits(one[0])));
    xg::manual_seed(2024);
    const Tensor first = xg::rand({1000}), second = xg::rand({1000});
    BOOST_TEST((bits(first) != bits(second)));
}

BOOST_AUTO_TEST_CASE(successive_calls_share_no_random_bits) {
    // randn uses two uniforms per element; the next call must start after all of them.
    xg::manual_seed(99);
    const Tensor n = xg::randn({1000}, xg::f64);
    const auto after = xg::rand({1000}, xg::f64).to_vector<double>();
    xg::manual_seed(99);
    const auto stream = xg::rand({4000}, xg::f64).to_vector<double>();
    const std::set<double> used(stream.begin(), stream.begin() + 2000);  // what randn consumed
    std::size_t shared = 0;
    for (double v : after) shared += used.count(v);
    BOOST_TEST(shared == 0u);
    (void)n;
}

BOOST_AUTO_TEST_CASE(statistics_are_sane) {
    xg::manual_seed(7);
    const auto n = xg::randn({100000}, xg::f64).to_vector<double>();
    BOOST_TEST(std::fabs(mean_of(n)) < 0.015);  // standard error 0.0032
    BOOST_TEST(std::fabs(std_of(n) - 1.0) < 0.01);
    const auto within1 = std::count_if(n.begin(), n.end(), [](double v) { return std::fabs(v) < 1.0; });
    BOOST_TEST(std::fabs(static_cast<double>(within1) / 1e5 - 0.6827) < 0.01);
    const auto nf = xg::normal({100000}, -3.0, 2.0).to_vector<double>();
    BOOST_TEST(std::fabs(mean_of(nf) + 3.0) < 0.03);
    BOOST_TEST(std::fabs(std_of(nf) - 2.0) < 0.02);
    const auto u = xg::rand({100000}).to_vector<double>();
    BOOST_TEST(*std::min_element(u.begin(), u.end()) >= 0.0);
    BOOST_TEST(*std::max_element(u.begin(), u.end()) < 1.0);
    BOOST_TEST(std::fabs(mean_of(u) - 0.5) < 0.005);
    BOOST_TEST(std::fabs(std_of(u) - std::sqrt(1.0 / 12)) < 0.005);
    const auto w = xg::uniform({100000}, -2.0, 3.0, xg::f64).to_vector<double>();
    BOOST_TEST(*std::min_element(w.begin(), w.end()) >= -2.0);
    BOOST_TEST(*std::max_element(w.begin(), w.end()) < 3.0);
    BOOST_TEST(std::fabs(mean_of(w) - 0.5) < 0.03);
    const auto r = xg::randint(-5, 7, {120000}).to_vector<std::int64_t>();
    std::vector<int> counts(12, 0);
    const auto outside = std::count_if(r.begin(), r.end(), [](std::int64_t v) { return v < -5 || v >= 7; });
    BOOST_REQUIRE(outside == 0);
    for (auto v : r) ++counts[static_cast<std::size_t>(v + 5)];
    for (int c : counts) BOOST_TEST(std::abs(c - 10000) < 500);  // sd 96
    auto p = xg::randperm(1000).to_vector<std::int64_t>();
    BOOST_TEST(p != [] {
        std::vector<std::int64_t> id(1000);
        std::iota(id.begin(), id.end(), 0);
        return id;
    }());
    std::sort(p.begin(), p.end());
    std::vector<std::int64_t> identity(1000);
    std::iota(identity.begin(), identity.end(), 0);
    BOOST_TEST(p == identity);
    check_meta(xg::randperm(0), {0}, xg::i64);
}

BOOST_AUTO_TEST_CASE(float32_uniform_stays_below_high) {
    // In float32, [1, 1 + 2^-23) holds only 1.0: rounding low + (high - low) u must never give high.
    const double high = 1.0 + std::ldexp(1.0, -23);
    const auto v = xg::uniform({100000}, 1.0, high, xg::f32).to_vector<float>();
    BOOST_TEST(std::all_of(v.begin(), v.end(), [](float x) { return x == 1.0f; }));
    const auto z = xg::uniform({10}, 2.0, 2.0).to_vector<float>();  // empty interval: low
    BOOST_TEST(std::all_of(z.begin(), z.end(), [](float x) { return x == 2.0f; }));
}

BOOST_AUTO_TEST_CASE(random_factories_reject_bad_arguments) {
    BOOST_CHECK_EXCEPTION(xg::randn({2}, xg::i64), xg::DtypeError, msg_has({"normal", "int64"}));
    BOOST_CHECK_EXCEPTION(xg::rand({2}, xg::i64), xg::DtypeError, msg_has({"uniform", "int64"}));
    BOOST_CHECK_EXCEPTION(xg::uniform({2}, 1.0, 0.0), xg::ValueError, msg_has({"uniform", "low"}));
    BOOST_CHECK_EXCEPTION(xg::normal({2}, 0.0, -1.0), xg::ValueError, msg_has({"normal", "stddev"}));
    BOOST_CHECK_EXCEPTION(xg::randint(3, 3, {2}), xg::ValueError, msg_has({"randint", "3"}));
    BOOST_CHECK_EXCEPTION(xg::randperm(-1), xg::ValueError, msg_has({"randperm"}));
    BOOST_CHECK_EXCEPTION(xg::randn({-1}), xg::ValueError, msg_has({"normal", "[-1]"}));
    check_meta(xg::randn({0, 5}), {0, 5}, xg::f32);
}

BOOST_AUTO_TEST_SUITE_END()

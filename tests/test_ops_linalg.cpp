// ops/linalg: matmul with torch.matmul semantics (1-D, 2-D, batched with broadcast batch dims)
// and matmul_t. Values against a plain triple loop, including GEMMs large enough to be tiled.
#include "ops_test_util.hpp"

using namespace xgt;
using xg::Tensor;

namespace {

// Plain reference of torch.matmul: promote 1-D operands, broadcast batch dims, triple loop.
std::vector<double> ref_matmul(const Tensor& a, const Tensor& b, xg::Shape& out_shape) {
    xg::Shape sa = a.shape(), sb = b.shape();
    const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
    if (a1) sa.insert(sa.begin(), 1);
    if (b1) sb.push_back(1);
    const std::int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
    const xg::Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
    const std::size_t nd = std::max(ba.size(), bb.size());
    auto dim = [nd](const xg::Shape& s, std::size_t i) { return i < nd - s.size() ? 1 : s[i - (nd - s.size())]; };
    xg::Shape batch;
    for (std::size_t i = 0; i < nd; ++i) batch.push_back(dim(ba, i) == 1 ? dim(bb, i) : dim(ba, i));
    const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
    std::int64_t nbatch = 1;
    for (auto d : batch) nbatch *= d;
    std::vector<double> out(static_cast<std::size_t>(nbatch * m * n), 0.0);
    for (std::int64_t t = 0; t < nbatch; ++t) {
        std::int64_t rem = t, oa = 0, ob = 0, sta = 1, stb = 1;
        for (std::size_t i = nd; i-- > 0;) {
            const std::int64_t idx = rem % batch[i];
            rem /= batch[i];
            if (dim(ba, i) != 1) oa += idx * sta;
            if (dim(bb, i) != 1) ob += idx * stb;
            sta *= dim(ba, i);
            stb *= dim(bb, i);
        }
        for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < n; ++j) {
                double s = 0;
                for (std::int64_t p = 0; p < k; ++p) s += av[(oa * m + i) * k + p] * bv[(ob * k + p) * n + j];
                out[(t * m + i) * n + j] = s;
            }
    }
    out_shape = batch;
    if (!a1) out_shape.push_back(m);
    if (!b1) out_shape.push_back(n);
    return out;
}

const std::vector<std::pair<xg::Shape, xg::Shape>>& shape_pairs() {
    static const std::vector<std::pair<xg::Shape, xg::Shape>> p = {
        {{3}, {3}},       {{3}, {3, 2}},       {{2, 3}, {3}},       {{2, 3}, {3, 4}},
        {{1, 1}, {1, 1}}, {{2, 2, 3}, {3, 2}}, {{3, 2}, {2, 2, 4}}, {{2, 1, 2, 3}, {3, 3, 2}},
        {{3}, {2, 3, 2}}, {{2, 2, 3}, {3}},    {{0, 3}, {3, 2}},    {{2, 0}, {0, 3}},
        {{2, 3}, {3, 0}}, {{0, 2, 3}, {3, 2}}, {{0}, {0}},
    };
    return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_linalg)

BOOST_AUTO_TEST_CASE(hand_computed_values) {
    const Tensor a = xg::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, xg::f64);
    const Tensor b = xg::tensor({1, 0, 0, 1, 1, 1}, {3, 2}, xg::f64);
    check_values(xg::matmul(a, b), {4, 5, 10, 11});
    check_values(xg::matmul(xg::tensor({1, 2, 3}, {3}, xg::f64), xg::tensor({4, 5, 6}, {3}, xg::f64)), {32});
    check_meta(xg::matmul(xg::tensor({1, 2, 3}, {3}, xg::f64), xg::tensor({4, 5, 6}, {3}, xg::f64)), {}, xg::f64);
    check_values(xg::matmul(a, xg::tensor({1, 1, 1}, {3}, xg::f64)), {6, 15});
    check_values(xg::matmul(xg::tensor({1, 1}, {2}, xg::f64), a), {5, 7, 9});
    check_values(xg::matmul_t(a, a, false, true), {14, 32, 32, 77});                      // a a^T
    check_values(xg::matmul_t(a, a, true, false), {17, 22, 27, 22, 29, 36, 27, 36, 45});  // a^T a
    check_values(xg::matmul_t(b, a, true, true), {1 + 3 * 0 + 1 * 0 + 0 + 3, 4 + 6, 2 + 3, 5 + 6});
}

BOOST_AUTO_TEST_CASE(values_match_a_triple_loop) {
    xg::manual_seed(41);
    for (const auto& [sa, sb] : shape_pairs()) {
        BOOST_TEST_CONTEXT(xg::shape_str(sa) << " @ " << xg::shape_str(sb)) {
            for (auto dt : {xg::f64, xg::f32}) {
                const Tensor a = xg::randn(sa, dt), b = xg::randn(sb, dt);
                xg::Shape shape;
                const auto expected = ref_matmul(a, b, shape);
                const Tensor y = xg::matmul(a, b);
                check_meta(y, shape, dt);
                check_values(y, expected, dt == xg::f64 ? 1e-13 : 1e-5, dt == xg::f64 ? 1e-13 : 1e-5);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(large_tiled_gemms_match_a_triple_loop) {
    // Big enough to be cut into row tiles (128 rows from m = 256, 64 from m = 128) or column tiles
    // (short and wide), with and without transposed operands: each tile must address the full
    // leading dimension.
    xg::manual_seed(42);
    struct Case {
        xg::Shape a, b;
        bool ta, tb;
    };
    for (const Case& c : std::vector<Case>{{{300, 260}, {300, 200}, true, false},
                                           {{260, 300}, {200, 300}, false, true},
                                           {{300, 260}, {200, 300}, true, true},
                                           {{270, 300}, {300, 130}, false, false},
                                           {{100, 300}, {600, 300}, false, true},
                                           {{300, 100}, {300, 600}, true, false},
                                           {{2, 130, 64}, {64, 600}, false, false},
                                           {{300, 200}, {300, 130}, true, false},  // 64-row tiles
                                           {{100, 300}, {400, 300}, false, true},  // 128-column tiles
                                           {{300, 100}, {300, 300}, true, false}}) {
        BOOST_TEST_CONTEXT(xg::shape_str(c.a)
                           << (c.ta ? "^T" : "") << " @ " << xg::shape_str(c.b) << (c.tb ? "^T" : "")) {
            const Tensor a = xg::randn(c.a, xg::f64), b = xg::randn(c.b, xg::f64);
            const Tensor at = c.ta ? xg::transpose(a, -1, -2) : a, bt = c.tb ? xg::transpose(b, -1, -2) : b;
            xg::Shape shape;
            const auto expected = ref_matmul(at, bt, shape);
            const Tensor y = xg::matmul_t(a, b, c.ta, c.tb);
            check_meta(y, shape, xg::f64);
            const auto v = y.to_vector<double>();
            double worst = 0;
            for (std::size_t i = 0; i < v.size(); ++i) worst = std::max(worst, std::fabs(v[i] - expected[i]));
            BOOST_TEST(worst < 1e-10);
        }
    }
}

BOOST_AUTO_TEST_CASE(large_gemm_gradients) {
    // C = A B with G = 1: dA[i][p] = sum_j B[p][j], dB[p][j] = sum_i A[i][p]. The backward runs the
    // transposed, tiled GEMMs (dB = A^T G has m = 300 >= 256 rows).
    xg::manual_seed(43);
    Tensor a = xg::randn({260, 300}, xg::f64).requires_grad_();
    Tensor b = xg::randn({300, 270}, xg::f64).requires_grad_();
    xg::sum(xg::matmul(a, b)).backward();
    const auto av = a.to_vector<double>(), bv = b.to_vector<double>();
    std::vector<double> row_b(300, 0.0), col_a(300, 0.0);
    for (int p = 0; p < 300; ++p)
        for (int j = 0; j < 270; ++j) row_b[p] += bv[p * 270 + j];
    for (int i = 0; i < 260; ++i)
        for (int p = 0; p < 300; ++p) col_a[p] += av[i * 300 + p];
    const auto ga = a.grad().to_vector<double>(), gb = b.grad().to_vector<double>();
    double worst = 0;
    for (int i = 0; i < 260; ++i)
        for (int p = 0; p < 300; ++p) worst = std::max(worst, std::fabs(ga[i * 300 + p] - row_b[p]));
    for (int p = 0; p < 300; ++p)
        for (int j = 0; j < 270; ++j) worst = std::max(worst, std::fabs(gb[p * 270 + j] - col_a[p]));
    BOOST_TEST(worst < 1e-10);
}

BOOST_AUTO_TEST_CASE(gradcheck_and_gradgradcheck) {
    xg::manual_seed(44);
    for (const auto& [sa, sb] : shape_pairs()) {
        BOOST_TEST_CONTEXT(xg::shape_str(sa) << " @ " << xg::shape_str(sb)) {
            const Tensor a = rleaf(sa), b = rleaf(sb);
            auto fn = [](const Inputs& in) { return xg::matmul(in[0], in[1]); };
            XGT_CHECK_GRADS(fn, {a, b});
            // Nonlinear around it, so that second derivatives mix both operands.
            auto fn2 = [](const Inputs& in) { return xg::sin(xg::matmul(in[0] * in[0], in[1])); };
            XGT_CHECK_GRADS(fn2, {a, b});
            XG_CHECK_GRAD(fn, {a, b.detach()});
            XG_CHECK_GRAD(fn, {a.detach(), b});
        }
    }
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            BOOST_TEST_CONTEXT("matmul_t " << ta << tb) {
                const Tensor a = rleaf(ta ? xg::Shape{2, 3, 2} : xg::Shape{2, 2, 3});
                const Tensor b = rleaf(tb ? xg::Shape{4, 3} : xg::Shape{3, 4});
                auto fn = [ta, tb](const Inputs& in) { return xg::cos(xg::matmul_t(in[0], in[1], ta, tb)); };
                XGT_CHECK_GRADS(fn, {a, b});
            }
        }
}

BOOST_AUTO_TEST_CASE(third_derivatives) {
    xg::manual_seed(45);
    const auto g = gradient_of([](const Inputs& in) { return xg::sin(xg::matmul(in[0] * in[0], in[1])); });
    XGT_CHECK_GRADS(g, {rleaf({2, 3}), rleaf({3, 2})});
    XGT_CHECK_GRADS(g, {rleaf({2, 2, 3}), rleaf({3})});
}

BOOST_AUTO_TEST_CASE(dtype_promotion) {
    Tensor a = xg::tensor({1, 2}, {1, 2}, xg::f32).requires_grad_();
    Tensor b = xg::tensor({3, 4}, {2, 1}, xg::f64).requires_grad_();
    const Tensor c = xg::matmul(a, b);
    check_meta(c, {1, 1}, xg::f64);
    check_values(c, {11});
    xg::sum(c).backward();
    check_meta(a.grad(), {1, 2}, xg::f32);
    check_values(a.grad(), {3, 4});
    check_values(b.grad(), {1, 2});
    check_meta(xg::matmul(xg::ones({2, 2}), xg::ones({2, 2})), {2, 2}, xg::f32);
    // float32 with int64 promotes like every binary op; int64 with int64 is an error (below).
    const Tensor mixed = xg::matmul(xg::ones({2, 2}), xg::tensor_i64({1, 2}, {2, 1}));
    check_meta(mixed, {2, 1}, xg::f32);
    check_values(mixed, {3, 3});
}

BOOST_AUTO_TEST_CASE(errors_name_op_and_shapes) {
    BOOST_CHECK_EXCEPTION(xg::matmul(xg::zeros({2, 3}), xg::zeros({4, 5})), xg::ShapeError,
                          msg_has({"matmul: shapes [2,3] and [4,5] are not compatible (3 != 4)"}));
    BOOST_CHECK_EXCEPTION(xg::matmul(xg::zeros({3}), xg::zeros({4})), xg::ShapeError,
                          msg_has({"matmul", "[3]", "[4]", "3 != 4"}));
    BOOST_CHECK_EXCEPTION(xg::matmul(xg::zeros({2, 3}), xg::zeros({2})), xg::ShapeError,
                          msg_has({"matmul", "[2,3]", "[2]"}));
    BOOST_CHECK_EXCEPTION(xg::matmul(xg::zeros({2, 2, 3}), xg::zeros({3, 3, 4})), xg::ShapeError,
                          msg_has({"matmul", "[2,2,3]", "[3,3,4]", "batch"}));
    BOOST_CHECK_EXCEPTION(xg::matmul(xg::scalar(1), xg::zeros({2})), xg::ShapeError, msg_has({"matmul", "[]", "[2]"}));
    BOOST_CHECK_EXCEPTION(xg::matmul(xg::tensor_i64({1, 2, 3, 4}, {2, 2}), xg::tensor_i64({1, 2}, {2, 1})),
                          xg::DtypeError, msg_has({"matmul", "int64", "[2,2]", "[2,1]"}));
    BOOST_CHECK_EXCEPTION(xg::matmul_t(xg::zeros({2, 3}), xg::zeros({2, 3}), false, false), xg::ShapeError,
                          msg_has({"matmul", "[2,3]", "3 != 2"}));
    BOOST_CHECK_EXCEPTION(xg::matmul_t(xg::zeros({3}), xg::zeros({3, 2}), true, false), xg::ShapeError,
                          msg_has({"matmul", "[3]"}));
    BOOST_CHECK_EXCEPTION(xg::matmul(Tensor(), xg::zeros({2})), xg::ValueError, msg_has({"matmul", "undefined"}));
}

BOOST_AUTO_TEST_CASE(special_values_propagate) {
    const Tensor a = xg::tensor({NAN, 1, 1, 1}, {2, 2}, xg::f64);
    const auto v = xg::matmul(a, xg::eye(2, 2, xg::f64)).to_vector<double>();
    BOOST_TEST(std::isnan(v[0]));
    BOOST_TEST(v[3] == 1.0);
    // Zero inner dimension: a sum of nothing is 0.
    check_values(xg::matmul(xg::zeros({2, 0}), xg::zeros({0, 2})), {0, 0, 0, 0});
}

BOOST_AUTO_TEST_SUITE_END()

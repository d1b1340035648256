// ops/shape_ops: reshape, flatten, squeeze, unsqueeze, transpose, permute, broadcast_to, sum_to,
// slice, index_select, gather, concat, stack, split, one_hot, Tensor::to. Values against plain
// index loops, gradients by gradcheck/gradgradcheck, and every kind of bad argument.
#include <numeric>

#include "ops_test_util.hpp"

using namespace xgt;
using xg::Tensor;

namespace {

// 0, 1, 2, ... in float64, shaped.
Tensor iota(const xg::Shape& s) {
    std::vector<double> v(static_cast<std::size_t>(xg::shape_numel(s)));
    std::iota(v.begin(), v.end(), 0.0);
    return xg::tensor(v, s, xg::f64);
}

// Row-major multi-index of a flat position.
xg::Shape unravel(std::int64_t flat, const xg::Shape& s) {
    xg::Shape idx(s.size());
    for (std::size_t d = s.size(); d-- > 0;) {
        idx[d] = flat % s[d];
        flat /= s[d];
    }
    return idx;
}
std::int64_t ravel(const xg::Shape& idx, const xg::Shape& s) {
    std::int64_t flat = 0;
    for (std::size_t d = 0; d < s.size(); ++d) flat = flat * s[d] + idx[d];
    return flat;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(ops_shape)

BOOST_AUTO_TEST_CASE(reshape_flatten_squeeze_unsqueeze) {
    const Tensor x = iota({2, 3, 4});
    check_meta(xg::reshape(x, {4, -1}), {4, 6}, xg::f64);
    check_values(xg::reshape(x, {24}), x.to_vector<double>());
    check_meta(xg::reshape(xg::scalar(5.0), {1, 1}), {1, 1}, xg::f32);
    check_meta(xg::reshape(xg::ones({1, 1}), {}), {}, xg::f32);
    check_meta(xg::reshape(xg::zeros({0, 4}), {2, 0, 3}), {2, 0, 3}, xg::f32);
    check_meta(xg::reshape(xg::zeros({0, 4}), {-1, 4}), {0, 4}, xg::f32);
    check_meta(xg::flatten(x), {24}, xg::f64);
    check_meta(xg::flatten(x, 1), {2, 12}, xg::f64);
    check_meta(xg::flatten(x, 0, 1), {6, 4}, xg::f64);
    check_meta(xg::flatten(xg::scalar(1)), {1}, xg::f32);
    check_meta(xg::squeeze(xg::zeros({1, 3, 1, 2})), {3, 2}, xg::f32);
    check_meta(xg::squeeze(xg::zeros({1, 3, 1}), -1), {1, 3}, xg::f32);
    check_meta(xg::squeeze(xg::zeros({2, 3}), 0), {2, 3}, xg::f32);  // not size 1: unchanged, as PyTorch
    check_meta(xg::squeeze(xg::scalar(1), 0), {}, xg::f32);
    check_meta(xg::unsqueeze(x, 0), {1, 2, 3, 4}, xg::f64);
    check_meta(xg::unsqueeze(x, -1), {2, 3, 4, 1}, xg::f64);
    check_meta(xg::unsqueeze(x, 2), {2, 3, 1, 4}, xg::f64);
    check_meta(xg::unsqueeze(xg::scalar(1), 0), {1}, xg::f32);
    // reshape-like ops share the buffer (views), the values are unchanged.
    BOOST_TEST(xg::reshape(x, {6, 4}).array().shares_storage(x.array()));
    BOOST_TEST(xg::unsqueeze(x, 1).array().shares_storage(x.array()));
    check_values(xg::flatten(xg::unsqueeze(x, 1)), x.to_vector<double>());
}

BOOST_AUTO_TEST_CASE(permute_and_transpose_match_an_index_loop) {
    for (const auto& [shape, perm] :
         std::vector<std::pair<xg::Shape, std::vector<std::int64_t>>>{{{2, 3, 4}, {2, 0, 1}},
                                                                      {{2, 3, 4}, {1, 0, 2}},
                                                                      {{2, 3, 4, 5}, {3, 1, 0, 2}},
                                                                      {{5, 7}, {1, 0}},
                                                                      {{2, 3}, {0, 1}},
                                                                      {{200, 300}, {1, 0}},
                                                                      {{40, 50, 60}, {2, 1, 0}},
                                                                      {{2, 0, 3}, {2, 0, 1}}}) {
        BOOST_TEST_CONTEXT(xg::shape_str(shape) << " perm " << xg::shape_str(perm)) {
            const Tensor x = iota(shape);
            const Tensor y = xg::permute(x, perm);
            xg::Shape out(shape.size());
            for (std::size_t i = 0; i < perm.size(); ++i) out[i] = shape[perm[i]];
            check_meta(y, out, xg::f64);
            const auto v = y.to_vector<double>();
            std::size_t bad = 0;
            for (std::int64_t f = 0; f < static_cast<std::int64_t>(v.size()); ++f) {
                const auto oi = unravel(f, out);
                xg::Shape ii(shape.size());
                for (std::size_t i = 0; i < perm.size(); ++i) ii[perm[i]] = oi[i];
                bad += v[f] != static_cast<double>(ravel(ii, shape));
            }
            BOOST_TEST(bad == 0u);
        }
    }
    const Tensor m = iota({2, 3});
    check_values(xg::transpose(m, 0, 1), {0, 3, 1, 4, 2, 5});
    check_values(xg::transpose(m, -1, -2), {0, 3, 1, 4, 2, 5});
    check_meta(xg::transpose(iota({2, 3, 4}), 0, 2), {4, 3, 2}, xg::f64);
    check_meta(xg::transpose(iota({3}), 0, -1), {3}, xg::f64);
    check_meta(xg::transpose(xg::scalar(1), 0, 0), {}, xg::f32);
    const Tensor i = xg::tensor_i64({1, 2, 3, 4}, {2, 2});
    check_values(xg::transpose(i, 0, 1), {1, 3, 2, 4});
}

BOOST_AUTO_TEST_CASE(broadcast_to_and_sum_to) {
    const Tensor v = xg::tensor({1, 2, 3}, {3}, xg::f64);
    check_values(xg::broadcast_to(v, {2, 3}), {1, 2, 3, 1, 2, 3});
    check_values(xg::broadcast_to(xg::tensor({1, 2}, {2, 1}, xg::f64), {2, 3}), {1, 1, 1, 2, 2, 2});
    check_values(xg::broadcast_to(xg::scalar(7.0), {2, 2}), {7, 7, 7, 7});
    check_meta(xg::broadcast_to(v, {0, 3}), {0, 3}, xg::f64);
    const Tensor m = iota({2, 3});
    check_values(xg::sum_to(m, {3}), {3, 5, 7});
    check_values(xg::sum_to(m, {2, 1}), {3, 12});
    check_values(xg::sum_to(m, {1, 3}), {3, 5, 7});
    check_values(xg::sum_to(m, {}), {15});
    check_values(xg::sum_to(m, {1}), {15});
    check_values(xg::sum_to(xg::zeros({0, 3}, xg::f64), {3}), {0, 0, 0});
}

BOOST_AUTO_TEST_CASE(slice_follows_python_semantics) {
    const Tensor x = iota({10});
    auto py = [](std::int64_t n, std::int64_t start, std::int64_t stop, std::int64_t step) {
        auto clampi = [n](std::int64_t i) { return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n); };
        std::vector<double> r;
        for (std::int64_t i = clampi(start); i < clampi(stop); i += step) r.push_back(static_cast<double>(i));
        return r;
    };
    for (auto [a, b, s] : std::vector<std::array<std::int64_t, 3>>{{0, 10, 1},
                                                                   {2, 7, 1},
                                                                   {2, 7, 2},
                                                                   {1, 10, 3},
                                                                   {-3, 10, 1},
                                                                   {-100, 100, 4},
                                                                   {5, 2, 1},
                                                                   {-1, -5, 1},
                                                                   {7, 7, 1},
                                                                   {0, -1, 2},
                                                                   {9, 100, 5}}) {
        BOOST_TEST_CONTEXT(a << ":" << b << ":" << s) {
            const auto expected = py(10, a, b, s);
            const Tensor y = xg::slice(x, 0, a, b, s);
            check_meta(y, {static_cast<std::int64_t>(expected.size())}, xg::f64);
            check_values(y, expected);
        }
    }
    const Tensor m = iota({3, 4, 5});
    const Tensor y = xg::slice(m, 1, 1, 4, 2);  // rows 1 and 3 of the middle axis
    check_meta(y, {3, 2, 5}, xg::f64);
    const auto v = y.to_vector<double>();
    for (std::int64_t f = 0; f < 30; ++f) {
        auto idx = unravel(f, {3, 2, 5});
        idx[1] = 1 + 2 * idx[1];
        BOOST_TEST(v[f] == static_cast<double>(ravel(idx, {3, 4, 5})));
    }
    check_values(xg::slice(m, -1, 4, 100), {4, 9, 14, 19, 24, 29, 34, 39, 44, 49, 54, 59});
}

BOOST_AUTO_TEST_CASE(index_select_and_gather_match_index_loops) {
    const Tensor x = iota({3, 4});
    const Tensor idx = xg::tensor_i64({2, 0, 2, -1}, {4});
    check_values(xg::index_select(x, 0, idx), {8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11, 8, 9, 10, 11});
    check_values(xg::index_select(x, 1, xg::tensor_i64({3, 3}, {2})), {3, 3, 7, 7, 11, 11});
    check_meta(xg::index_select(x, 1, xg::tensor_i64({1}, {})), {3, 1}, xg::f64);
    check_meta(xg::index_select(x, 0, xg::tensor_i64({}, {0})), {0, 4}, xg::f64);
    // gather: out[i][j] = x[i][index[i][j]] along axis 1, and x[index[i][j]][j] along axis 0.
    const Tensor gi = xg::tensor_i64({3, 0, 1, 1, 2, -4}, {3, 2});
    check_values(xg::gather(x, 1, gi), {3, 0, 5, 5, 10, 8});
    const Tensor g0 = xg::tensor_i64({2, 0, 1, 1}, {1, 4});
    check_values(xg::gather(x, 0, g0), {8, 1, 6, 7});
    check_values(xg::gather(xg::scalar(3.0, xg::f64), 0, xg::tensor_i64({0}, {})), {3});
    // A 3-D gather against the definition.
    xg::manual_seed(31);
    const Tensor t = xg::randn({3, 4, 5}, xg::f64);
    const Tensor ti = xg::randint(0, 4, {2, 6, 3});
    const auto out = xg::gather(t, 1, ti).to_vector<double>();
    const auto tv = t.to_vector<double>();
    const auto iv = ti.to_vector<std::int64_t>();
    for (std::int64_t f = 0; f < 36; ++f) {
        auto id = unravel(f, {2, 6, 3});
        id[1] = iv[f];
        BOOST_TEST(out[f] == tv[ravel(id, {3, 4, 5})]);
    }
    // Labels as indices: picking the logit of each class (the cross-entropy pattern).
    const Tensor logits = xg::tensor({0.1, 0.7, 0.2, 0.5, 0.3, 0.2}, {2, 3}, xg::f32);
    const Tensor labels = xg::tensor_i64({1, 0}, {2, 1});
    check_values(xg::gather(logits, 1, labels), {0.7, 0.5}, 1e-7);
}

BOOST_AUTO_TEST_CASE(concat_stack_split) {
    const Tensor a = iota({2, 2}), b = xg::tensor({9, 8}, {2, 1}, xg::f64);
    check_values(xg::concat({a, b}, 1), {0, 1, 9, 2, 3, 8});
    check_values(xg::concat({a, a}, 0), {0, 1, 2, 3, 0, 1, 2, 3});
    check_values(xg::concat({a, xg::zeros({0, 2}, xg::f64), a}, -2), {0, 1, 2, 3, 0, 1, 2, 3});
    check_meta(xg::concat({a.to(xg::f32), b}, 1), {2, 3}, xg::f64);  // promoted
    check_values(xg::stack({xg::scalar(1.0), xg::scalar(2.0)}), {1, 2});
    check_meta(xg::stack({a, a, a}, 1), {2, 3, 2}, xg::f64);
    check_values(xg::stack({a, a * 10.0}, -1), {0, 0, 1, 10, 2, 20, 3, 30});
    const auto parts = xg::split(iota({5, 2}), 2, 0);
    BOOST_REQUIRE_EQUAL(parts.size(), 3u);
    check_values(parts[0], {0, 1, 2, 3});
    check_values(parts[2], {8, 9});
    const auto sized = xg::split(iota({2, 5}), std::vector<std::int64_t>{1, 0, 4}, 1);
    BOOST_REQUIRE_EQUAL(sized.size(), 3u);
    check_values(sized[0], {0, 5});
    check_meta(sized[1], {2, 0}, xg::f64);
    check_values(sized[2], {1, 2, 3, 4, 6, 7, 8, 9});
    // Round trip.
    const Tensor x = iota({3, 7});
    check_values(xg::concat(xg::split(x, 3, 1), 1), x.to_vector<double>());
    BOOST_TEST(xg::split(xg::zeros({0}), 2).size() == 1u);
}

BOOST_AUTO_TEST_CASE(gradcheck_and_gradgradcheck) {
    xg::manual_seed(32);
    const Tensor x = rleaf({2, 3, 4});
    const Tensor s = rleaf({});
    const Tensor z = rleaf({0, 3});
    const Tensor one = rleaf({1});
    // Each op composed with a nonlinearity so that second derivatives are non-trivial.
    const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
        {"reshape", [](const Tensor& t) { return xg::reshape(t, {-1}); }},
        {"flatten", [](const Tensor& t) { return xg::flatten(t, 0, t.ndim() > 1 ? 1 : 0); }},
        {"squeeze", [](const Tensor& t) { return xg::squeeze(xg::unsqueeze(t, 0)); }},
        {"unsqueeze", [](const Tensor& t) { return xg::unsqueeze(t, -1); }},
        {"transpose", [](const Tensor& t) { return t.ndim() > 1 ? xg::transpose(t, 0, -1) : t * 1.0; }},
        {"permute",
         [](const Tensor& t) {
             std::vector<std::int64_t> p(t.ndim());
             std::iota(p.rbegin(), p.rend(), 0);
             return xg::permute(t, p);
         }},
        {"broadcast_to",
         [](const Tensor& t) {
             xg::Shape s = t.shape();
             s.insert(s.begin(), 2);
             return xg::broadcast_to(t, s);
         }},
        {"sum_to", [](const Tensor& t) { return xg::sum_to(t, t.ndim() ? xg::Shape{t.shape().back()} : xg::Shape{}); }},
        {"slice", [](const Tensor& t) { return t.ndim() ? xg::slice(t, -1, 1, 100, 2) : t * 1.0; }},
        {"index_select",
         [](const Tensor& t) {
             return t.ndim() ? xg::index_select(t, -1, xg::tensor_i64({0, 0, -1}, {3})) : t * 1.0;
         }},
        {"concat",
         [](const Tensor& t) {
             return t.ndim() ? xg::concat({t, t * 2.0, t}, -1) : t * 1.0;
         }},
        {"stack",
         [](const Tensor& t) {
             return xg::stack({t, t * t}, 0);
         }},
        {"split", [](const Tensor& t) { return t.ndim() ? xg::split(t, 1, 0).back() : t * 1.0; }},
    };
    for (const auto& [name, op] : ops) {
        for (const Tensor& in : {x, s, z, one}) {
            BOOST_TEST_CONTEXT(name << " on " << xg::shape_str(in.shape())) {
                auto fn = [op = op](const Inputs& v) { return xg::sin(op(v[0])) * op(v[0]); };
                XGT_CHECK_GRADS(fn, {in});
            }
        }
    }
    // gather with repeated indices (the gradient accumulates) and split's several outputs.
    const Tensor gi = xg::tensor_i64({0, 0, 3, 1, 1, 1, 2, 0, 3, 3, 3, 3}, {2, 3, 2});
    auto gather_fn = [gi](const Inputs& v) { return xg::square(xg::gather(v[0], 2, gi)); };
    XGT_CHECK_GRADS(gather_fn, {x});
    auto split_fn = [](const Inputs& v) {
        auto p = xg::split(v[0], std::vector<std::int64_t>{1, 2}, 1);
        return std::vector<Tensor>{p[0] * p[0], xg::exp(p[1])};
    };
    XGT_CHECK_GRADS(split_fn, {x});
    auto concat2 = [](const Inputs& v) { return xg::cos(xg::concat({v[0], v[1]}, 1)); };
    XGT_CHECK_GRADS(concat2, {rleaf({2, 3}), rleaf({2, 1})});
    auto stack2 = [](const Inputs& v) { return xg::stack({v[0], v[1] * v[0]}, 1); };
    XGT_CHECK_GRADS(stack2, {rleaf({3}), rleaf({3})});
    // to(): a float32 round trip loses digits, so central differences need a larger step there.
    xg::GradcheckOptions coarse;
    coarse.eps = 1e-3;
    coarse.atol = 1e-3;
    coarse.rtol = 1e-2;
    auto to_fn = [](const Inputs& v) { return xg::sin(v[0].to(xg::f32)).to(xg::f64) * v[0]; };
    XG_CHECK_GRAD(to_fn, {x}, coarse);
    XG_CHECK_GRADGRAD(to_fn, {x}, coarse);
    auto to64_fn = [](const Inputs& v) { return xg::sin(v[0].to(xg::f64)); };
    XGT_CHECK_GRADS(to64_fn, {x});
    // Mixed dtypes: the float32 input's gradient comes back as float32.
    Tensor a32 = xg::tensor({1, 2}, {2}, xg::f32).requires_grad_();
    Tensor b64 = xg::tensor({3}, {1}, xg::f64).requires_grad_();
    xg::sum(xg::square(xg::concat({a32, b64}))).backward();
    check_meta(a32.grad(), {2}, xg::f32);
    check_values(a32.grad(), {2, 4});
    check_values(b64.grad(), {6});
}

BOOST_AUTO_TEST_CASE(third_derivatives) {
    // The backward ops (slice_backward, index_select_backward, gather_backward) are themselves
    // differentiable: orders two and three.
    xg::manual_seed(33);
    const Tensor x = rleaf({3, 4});
    const Tensor gi = xg::tensor_i64({0, 3, 3, 1, 2, 2}, {3, 2});
    const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
        {"slice", [](const Tensor& t) { return xg::cos(xg::slice(t * t, 1, 1, 4, 2)); }},
        {"index_select",
         [](const Tensor& t) {
             return xg::cos(xg::index_select(t * t, 1, xg::tensor_i64({3, 0, 3}, {3})));
         }},
        {"gather", [gi](const Tensor& t) { return xg::cos(xg::gather(t * t, 1, gi)); }},
        {"concat",
         [](const Tensor& t) {
             return xg::cos(xg::concat({t * t, t}, 0));
         }},
        {"permute",
         [](const Tensor& t) {
             return xg::cos(xg::permute(t * t, {1, 0}));
         }},
        {"broadcast_to",
         [](const Tensor& t) {
             return xg::cos(xg::broadcast_to(t * t, {2, 3, 4}));
         }},
        {"sum_to",
         [](const Tensor& t) {
             return xg::cos(xg::sum_to(t * t, {1, 4}));
         }},
    };
    for (const auto& [name, op] : ops) {
        BOOST_TEST_CONTEXT(name) {
            const auto g = gradient_of([op = op](const Inputs& in) { return op(in[0]); });
            XGT_CHECK_GRADS(g, {x});
        }
    }
}

BOOST_AUTO_TEST_CASE(index_gradients_accumulate_repeats) {
    Tensor x = leaf({1, 2, 3}, {3});
    xg::sum(xg::index_select(x, 0, xg::tensor_i64({2, 2, 0, 2}, {4}))).backward();
    check_values(x.grad(), {1, 0, 3});
    Tensor y = leaf({1, 2, 3, 4}, {2, 2});
    xg::sum(xg::gather(y, 1, xg::tensor_i64({1, 1, 1, 0, 0, 0}, {2, 3}))).backward();
    check_values(y.grad(), {0, 3, 3, 0});
}

BOOST_AUTO_TEST_CASE(to_dtype) {
    Tensor x = xg::tensor({1.5, -2.25}, {2}, xg::f32).requires_grad_();
    const Tensor d = x.to(xg::f64);
    check_meta(d, {2}, xg::f64);
    check_values(d, {1.5, -2.25});
    xg::sum(d * d).backward();
    check_meta(x.grad(), {2}, xg::f32);
    check_values(x.grad(), {3, -4.5});
    BOOST_TEST(x.to(xg::f32).impl() == x.impl());  // same dtype: the same tensor
    const Tensor i = x.to(xg::i64);                // truncates toward zero; never requires grad
    check_meta(i, {2}, xg::i64);
    check_values(i, {1, -2});
    BOOST_TEST(!i.requires_grad());
    check_values(xg::tensor_i64({3, -7}, {2}).to(xg::f32), {3, -7});
    BOOST_CHECK_EXCEPTION(Tensor().to(xg::f32), xg::ValueError, msg_has({"to", "undefined"}));
}

BOOST_AUTO_TEST_CASE(one_hot) {
    const Tensor labels = xg::tensor_i64({2, 0, 1, 2}, {2, 2});
    const Tensor oh = xg::one_hot(labels, 3);
    check_meta(oh, {2, 2, 3}, xg::f32);
    check_values(oh, {0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1});
    check_meta(xg::one_hot(labels), {2, 2, 3}, xg::f32);  // inferred: max + 1
    check_meta(xg::one_hot(labels, 5, xg::f64), {2, 2, 5}, xg::f64);
    check_meta(xg::one_hot(xg::tensor_i64({1}, {}), 2), {2}, xg::f32);
    check_meta(xg::one_hot(xg::tensor_i64({}, {0}), 4), {0, 4}, xg::f32);
    BOOST_TEST(!oh.requires_grad());
    // one_hot and argmax are inverse.
    check_values(xg::argmax(oh, -1), labels.to_vector<double>());
    BOOST_CHECK_EXCEPTION(xg::one_hot(labels, 2), xg::IndexError, msg_has({"one_hot", "class 2", "2 classes"}));
    BOOST_CHECK_EXCEPTION(xg::one_hot(xg::tensor_i64({-1}, {1}), 3), xg::IndexError, msg_has({"one_hot", "-1"}));
    BOOST_CHECK_EXCEPTION(xg::one_hot(xg::tensor({1}, {1}), 3), xg::DtypeError,
                          msg_has({"one_hot", "int64", "float32"}));
    BOOST_CHECK_EXCEPTION(xg::one_hot(xg::tensor_i64({}, {0})), xg::ValueError, msg_has({"one_hot", "empty"}));
    BOOST_CHECK_EXCEPTION(xg::one_hot(labels, -4), xg::ValueError, msg_has({"one_hot", "-4"}));
}

BOOST_AUTO_TEST_CASE(bad_arguments_throw_with_op_and_shapes) {
    const Tensor x = xg::zeros({2, 3});
    BOOST_CHECK_EXCEPTION(xg::reshape(x, {4, 2}), xg::ShapeError, msg_has({"reshape", "[2,3]", "[4,2]"}));
    BOOST_CHECK_EXCEPTION(xg::reshape(x, {-1, -1}), xg::ShapeError, msg_has({"reshape", "-1"}));
    BOOST_CHECK_EXCEPTION(xg::reshape(x, {-1, 4}), xg::ShapeError, msg_has({"reshape", "[2,3]", "[-1,4]"}));
    BOOST_CHECK_EXCEPTION(xg::reshape(x, {-2, 3}), xg::ShapeError, msg_has({"reshape", "[-2,3]"}));
    // 0 elements with a -1: any size fits, so it is ambiguous (as PyTorch).
    BOOST_CHECK_EXCEPTION(xg::reshape(xg::zeros({0, 4}), {2, 0, -1}), xg::ShapeError,
                          msg_has({"reshape", "[0,4]", "[2,0,-1]", "ambiguous"}));
    BOOST_CHECK_EXCEPTION(xg::flatten(x, 1, 0), xg::IndexError, msg_has({"flatten"}));
    BOOST_CHECK_EXCEPTION(xg::squeeze(x, 2), xg::IndexError, msg_has({"squeeze", "axis 2"}));
    BOOST_CHECK_EXCEPTION(xg::unsqueeze(x, 4), xg::IndexError, msg_has({"unsqueeze", "axis 4"}));
    BOOST_CHECK_EXCEPTION(xg::transpose(x, 0, 2), xg::IndexError, msg_has({"transpose", "axis 2", "2-d"}));
    BOOST_CHECK_EXCEPTION(xg::permute(x, {0}), xg::ShapeError, msg_has({"permute", "[2,3]"}));
    BOOST_CHECK_EXCEPTION(xg::permute(x, {1, 1}), xg::IndexError, msg_has({"permute", "repeated"}));
    BOOST_CHECK_EXCEPTION(xg::broadcast_to(x, {3, 3}), xg::ShapeError, msg_has({"broadcast_to", "[2,3]", "[3,3]"}));
    BOOST_CHECK_EXCEPTION(xg::broadcast_to(x, {3}), xg::ShapeError, msg_has({"broadcast_to", "[2,3]", "[3]"}));
    BOOST_CHECK_EXCEPTION(xg::sum_to(x, {2}), xg::ShapeError, msg_has({"sum_to", "[2,3]", "[2]"}));
    BOOST_CHECK_EXCEPTION(xg::sum_to(x, {4, 2, 3}), xg::ShapeError, msg_has({"sum_to", "[2,3]", "[4,2,3]"}));
    BOOST_CHECK_EXCEPTION(xg::slice(x, 0, 0, 2, 0), xg::ValueError, msg_has({"slice", "step"}));
    BOOST_CHECK_EXCEPTION(xg::slice(x, 3, 0, 2), xg::IndexError, msg_has({"slice", "axis 3"}));
    BOOST_CHECK_EXCEPTION(xg::slice(xg::scalar(1), 0, 0, 1), xg::IndexError, msg_has({"slice", "0-d"}));
    const Tensor idx = xg::tensor_i64({0, 5}, {2});
    BOOST_CHECK_EXCEPTION(xg::index_select(x, 1, idx), xg::IndexError, msg_has({"index_select", "index 5", "size 3"}));
    BOOST_CHECK_EXCEPTION(xg::index_select(x, 0, xg::tensor({0}, {1})), xg::DtypeError,
                          msg_has({"index_select", "int64", "float32"}));
    BOOST_CHECK_EXCEPTION(xg::index_select(x, 0, xg::tensor_i64({0, 1}, {1, 2})), xg::ShapeError,
                          msg_has({"index_select", "[1,2]"}));
    BOOST_CHECK_EXCEPTION(xg::index_select(x, 2, xg::tensor_i64({0}, {1})), xg::IndexError,
                          msg_has({"index_select", "axis 2"}));
    BOOST_CHECK_EXCEPTION(xg::gather(x, 1, xg::tensor_i64({0, 1}, {2})), xg::ShapeError,
                          msg_has({"gather", "[2]", "[2,3]"}));
    BOOST_CHECK_EXCEPTION(xg::gather(x, 1, xg::tensor_i64({0, 3}, {1, 2})), xg::IndexError,
                          msg_has({"gather", "index 3", "size 3"}));
    BOOST_CHECK_EXCEPTION(xg::gather(x, 1, xg::tensor_i64({0, 0, 0, 0, 0, 0}, {3, 2})), xg::ShapeError,
                          msg_has({"gather", "[3,2]", "[2,3]"}));
    BOOST_CHECK_EXCEPTION(xg::concat({x, xg::zeros({3, 2})}, 0), xg::ShapeError, msg_has({"concat", "[2,3]", "[3,2]"}));
    BOOST_CHECK_EXCEPTION(xg::concat({x, xg::zeros({2, 3, 1})}, 0), xg::ShapeError, msg_has({"concat", "[2,3,1]"}));
    BOOST_CHECK_EXCEPTION(xg::concat({}, 0), xg::ValueError, msg_has({"concat"}));
    BOOST_CHECK_EXCEPTION(xg::concat({xg::scalar(1)}, 0), xg::ShapeError, msg_has({"concat", "0-d"}));
    BOOST_CHECK_EXCEPTION(xg::concat({x}, 2), xg::IndexError, msg_has({"concat", "axis 2"}));
    BOOST_CHECK_EXCEPTION(xg::stack({x, xg::zeros({3, 2})}), xg::ShapeError, msg_has({"stack", "[2,3]", "[3,2]"}));
    BOOST_CHECK_EXCEPTION(xg::stack({x}, 3), xg::IndexError, msg_has({"stack", "axis 3"}));
    BOOST_CHECK_EXCEPTION(xg::split(x, std::vector<std::int64_t>{1, 1}, 1), xg::ShapeError,
                          msg_has({"split", "[2,3]", "sum to 2"}));
    BOOST_CHECK_EXCEPTION(xg::split(x, 0, 1), xg::ValueError, msg_has({"split", "positive"}));
    BOOST_CHECK_EXCEPTION(xg::split(x, std::vector<std::int64_t>{4, -1}, 1), xg::ValueError, msg_has({"split", "-1"}));
    BOOST_CHECK_EXCEPTION(xg::reshape(Tensor(), {1}), xg::ValueError, msg_has({"reshape", "undefined"}));
}

BOOST_AUTO_TEST_CASE(integer_tensors_move_through_shape_ops) {
    const Tensor i = xg::tensor_i64({1, 2, 3, 4, 5, 6}, {2, 3});
    check_meta(xg::reshape(i, {3, 2}), {3, 2}, xg::i64);
    check_values(xg::permute(i, {1, 0}), {1, 4, 2, 5, 3, 6});
    check_values(xg::slice(i, 1, 0, 3, 2), {1, 3, 4, 6});
    check_values(xg::index_select(i, 1, xg::tensor_i64({2}, {1})), {3, 6});
    check_values(xg::concat({i, i}, 0), {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6});
    check_values(xg::broadcast_to(xg::tensor_i64({7}, {1}), {3}), {7, 7, 7});
    BOOST_TEST(xg::concat({i, i}, 0).dtype() == xg::i64);
}

BOOST_AUTO_TEST_SUITE_END()

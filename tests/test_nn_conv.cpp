// Convolution and pooling ops (ops/conv): values against direct loops, adjointness of im2col and
// col2im, gradcheck and gradgradcheck in float64.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

namespace {
using xg::Tensor;
using V = std::vector<Tensor>;

// Direct 7-loop convolution, the independent reference.
std::vector<double> naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, xg::Size2 s, xg::Size2 p, xg::Size2 d,
                               std::int64_t groups, xg::Shape& out_shape) {
    const auto X = x.to_vector<double>(), W = w.to_vector<double>();
    const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
    const std::int64_t O = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3);
    const std::int64_t OH = (H + 2 * p[0] - d[0] * (KH - 1) - 1) / s[0] + 1;
    const std::int64_t OW = (Wd + 2 * p[1] - d[1] * (KW - 1) - 1) / s[1] + 1;
    out_shape = {N, O, OH, OW};
    std::vector<double> y(N * O * OH * OW, 0.0);
    const std::int64_t og = O / groups;
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t o = 0; o < O; ++o)
            for (std::int64_t oh = 0; oh < OH; ++oh)
                for (std::int64_t ow = 0; ow < OW; ++ow) {
                    double acc = b.defined() ? b.to_vector<double>()[o] : 0.0;
                    const std::int64_t g = o / og;
                    for (std::int64_t c = 0; c < Cg; ++c)
                        for (std::int64_t i = 0; i < KH; ++i)
                            for (std::int64_t j = 0; j < KW; ++j) {
                                const std::int64_t ih = oh * s[0] - p[0] + i * d[0], iw = ow * s[1] - p[1] + j * d[1];
                                if (ih < 0 || ih >= H || iw < 0 || iw >= Wd) continue;
                                acc +=
                                    W[((o * Cg + c) * KH + i) * KW + j] * X[((n * C + g * Cg + c) * H + ih) * Wd + iw];
                            }
                    y[((n * O + o) * OH + oh) * OW + ow] = acc;
                }
    return y;
}

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
    BOOST_REQUIRE_EQUAL(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        BOOST_TEST(std::abs(a[i] - b[i]) <= tol, "at " << i << ": " << a[i] << " vs " << b[i]);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(nn_conv)

BOOST_AUTO_TEST_CASE(output_size_formula) {
    BOOST_TEST(xg::conv_output_size(28, 3, 1, 1, 1) == 28);
    BOOST_TEST(xg::conv_output_size(28, 2, 2, 0, 1) == 14);
    BOOST_TEST(xg::conv_output_size(7, 3, 2, 0, 2) == 2);  // span 7 - 4 - 1 = 2 -> 2/2 + 1
    BOOST_TEST(xg::conv_output_size(2, 5, 1, 0, 1) == 0);
}

BOOST_AUTO_TEST_CASE(im2col_by_hand) {
    // 1 image, 1 channel 3x3 = 0..8, kernel 2x2: 4 windows; row (i,j) holds tap (i,j) of each window.
    auto x = xg::arange(0, 9, 1, xg::f64);
    auto cols = xg::im2col(xg::reshape(x, {1, 1, 3, 3}), {2, 2});
    BOOST_TEST((cols.shape() == xg::Shape{4, 4}));
    const std::vector<double> want{0, 1, 3, 4, 1, 2, 4, 5, 3, 4, 6, 7, 4, 5, 7, 8};
    check_close(cols.to_vector<double>(), want, 0);
    // With padding 1 the corner window of tap (0,0) reads the padding: 0.
    auto padded = xg::im2col(xg::reshape(x, {1, 1, 3, 3}), {2, 2}, {2, 2}, {1, 1});
    BOOST_TEST((padded.shape() == xg::Shape{4, 4}));
    const std::vector<double> want_p{0, 0, 0, 4, 0, 0, 3, 5, 0, 1, 0, 7, 0, 2, 6, 8};
    check_close(padded.to_vector<double>(), want_p, 0);
}

BOOST_AUTO_TEST_CASE(col2im_is_the_adjoint_of_im2col) {
    xg::manual_seed(3);
    for (auto [s, p, d] : {std::tuple{xg::Size2{1, 1}, xg::Size2{0, 0}, xg::Size2{1, 1}},
                           std::tuple{xg::Size2{2, 1}, xg::Size2{1, 2}, xg::Size2{1, 2}},
                           std::tuple{xg::Size2{3, 2}, xg::Size2{1, 1}, xg::Size2{2, 1}}}) {
        auto x = xg::randn({2, 3, 7, 6}, xg::f64);
        auto cx = xg::im2col(x, {3, 2}, s, p, d);
        auto c = xg::randn(cx.shape(), xg::f64);
        const double lhs = xg::sum(cx * c).item<double>();
        const double rhs = xg::sum(x * xg::col2im(c, x.shape(), {3, 2}, s, p, d)).item<double>();
        BOOST_TEST(std::abs(lhs - rhs) < 1e-10 * (1 + std::abs(lhs)));
    }
}

BOOST_AUTO_TEST_CASE(conv2d_matches_direct_loops) {
    xg::manual_seed(4);
    struct Case {
        xg::Size2 s, p, d;
        std::int64_t groups;
        bool bias;
    };
    for (const Case& c : {Case{{1, 1}, {0, 0}, {1, 1}, 1, true}, Case{{2, 2}, {1, 1}, {1, 1}, 1, false},
                          Case{{1, 2}, {2, 1}, {2, 1}, 2, true}, Case{{1, 1}, {1, 1}, {1, 1}, 4, true}}) {
        auto x = xg::randn({2, 4, 7, 6}, xg::f64);
        auto w = xg::randn({8, 4 / c.groups, 3, 2}, xg::f64);
        Tensor b = c.bias ? xg::randn({8}, xg::f64) : Tensor();
        xg::Shape shape;
        const auto want = naive_conv(x, w, b, c.s, c.p, c.d, c.groups, shape);
        auto y = xg::conv2d(x, w, b, c.s, c.p, c.d, c.groups);
        BOOST_TEST(y.shape() == shape);
        check_close(y.to_vector<double>(), want, 1e-12);
    }
    // A single image skips the batch permute: same numbers.
    auto x1 = xg::randn({1, 2, 5, 5}, xg::f64), w1 = xg::randn({3, 2, 3, 3}, xg::f64);
    xg::Shape shape;
    check_close(xg::conv2d(x1, w1).to_vector<double>(), naive_conv(x1, w1, Tensor(), {1, 1}, {0, 0}, {1, 1}, 1, shape),
                1e-12);
}

// Gradients of sum(y * r) for y = conv2d(x, w, b) by direct loops: dx, dw, db.
std::vector<std::vector<double>> naive_conv_grads(const Tensor& x, const Tensor& w, const Tensor& r, xg::Size2 s,
                                                  xg::Size2 p, xg::Size2 d, std::int64_t groups = 1) {
    const auto X = x.to_vector<double>(), W = w.to_vector<double>(), R = r.to_vector<double>();
    const std::int64_t N = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
    const std::int64_t O = w.size(0), Cg = w.size(1), KH = w.size(2), KW = w.size(3), OH = r.size(2), OW = r.size(3);
    const std::int64_t og = O / groups;
    std::vector<double> dx(X.size(), 0.0), dw(W.size(), 0.0), db(static_cast<std::size_t>(O), 0.0);
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t o = 0; o < O; ++o)
            for (std::int64_t oh = 0; oh < OH; ++oh)
                for (std::int64_t ow = 0; ow < OW; ++ow) {
                    const double g = R[((n * O + o) * OH + oh) * OW + ow];
                    db[o] += g;
                    for (std::int64_t c = 0; c < Cg; ++c)
                        for (std::int64_t i = 0; i < KH; ++i)
                            for (std::int64_t j = 0; j < KW; ++j) {
                                const std::int64_t ih = oh * s[0] - p[0] + i * d[0], iw = ow * s[1] - p[1] + j * d[1];
                                if (ih < 0 || ih >= H || iw < 0 || iw >= Wd) continue;
                                const std::int64_t xi = ((n * C + o / og * Cg + c) * H + ih) * Wd + iw,
                                                   wi = ((o * Cg + c) * KH + i) * KW + j;
                                dx[xi] += g * W[wi];
                                dw[wi] += g * X[xi];
                            }
                }
    return {dx, dw, db};
}

BOOST_AUTO_TEST_CASE(conv2d_chunked_path_matches_direct_loops_at_any_thread_count) {
    // groups == 1 runs a few samples at a time (as many as fit 512 KiB of columns): [10, 8, 32, 32] in
    // float64 is one sample per chunk (10 chunks, 8 gradient groups); [6, 3, 9, 11] in float32 is one chunk.
    // "Same" paddings take im2col's shifted-plane copy; the strided case takes the row loop.
    // With groups: one GEMM per group on its rows of the columns; one input channel per group with
    // unit strides (depthwise, here with 1 and 2 outputs per channel, and a 5x5 kernel whose weight
    // gradients take several passes) takes the kernels without columns.
    struct Case {
        xg::Shape x, w;
        xg::Size2 s, p, d;
        xg::Dtype dtype;
        double tol;
        std::int64_t groups = 1;
    };
    for (const Case& c : {Case{{10, 8, 32, 32}, {6, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1}, xg::f64, 1e-10},
                          Case{{6, 3, 9, 11}, {4, 3, 3, 3}, {1, 1}, {2, 2}, {2, 2}, xg::f32, 2e-4},
                          Case{{6, 3, 9, 11}, {5, 3, 3, 2}, {2, 3}, {1, 0}, {1, 1}, xg::f32, 2e-4},
                          Case{{10, 8, 32, 32}, {8, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, xg::f64, 1e-10, 8},
                          Case{{6, 4, 9, 11}, {6, 2, 3, 2}, {2, 1}, {1, 1}, {1, 2}, xg::f32, 2e-4, 2},
                          Case{{6, 4, 9, 11}, {8, 1, 3, 2}, {2, 2}, {1, 0}, {2, 1}, xg::f32, 2e-4, 4},
                          Case{{6, 4, 9, 11}, {8, 1, 3, 2}, {1, 1}, {2, 0}, {2, 2}, xg::f32, 2e-4, 4},
                          Case{{4, 3, 12, 10}, {3, 1, 5, 5}, {1, 1}, {2, 2}, {1, 1}, xg::f64, 1e-10, 3}}) {
        xg::manual_seed(21);
        auto x = xg::randn(c.x, c.dtype).requires_grad_();
        auto w = xg::randn(c.w, c.dtype).requires_grad_();
        auto b = xg::randn({c.w[0]}, c.dtype).requires_grad_();
        xg::Shape shape;
        const auto want = naive_conv(x, w, b, c.s, c.p, c.d, c.groups, shape);
        auto r = xg::randn(shape, c.dtype);
        const auto want_grads = naive_conv_grads(x, w, r, c.s, c.p, c.d, c.groups);
        auto run = [&](int threads) {
            xg::set_num_threads(threads);
            auto y = xg::conv2d(x, w, b, c.s, c.p, c.d, c.groups);
            auto grads = xg::grad({xg::sum(y * r)}, {x, w, b});
            std::vector<std::vector<double>> out{y.to_vector<double>()};
            for (const auto& g : grads) out.push_back(g.to_vector<double>());
            return out;
        };
        const int before = xg::get_num_threads();
        const auto one = run(1), two = run(2);
        xg::set_num_threads(before);
        BOOST_TEST(one == two);  // bit-identical
        check_close(one[0], want, c.tol);
        for (int k = 0; k < 3; ++k) check_close(one[k + 1], want_grads[k], c.tol * 10);
        // A backward pass that records a graph takes the differentiable ops: the same gradients.
        auto y = xg::conv2d(x, w, b, c.s, c.p, c.d, c.groups);
        auto recorded = xg::grad({xg::sum(y * r)}, {x, w, b}, {}, true, true);
        for (int k = 0; k < 3; ++k) check_close(recorded[k].to_vector<double>(), want_grads[k], c.tol * 10);
    }
    // Double backward with only the input requiring grad (the weight is a constant of the graph), against
    // the same with both requiring grad.
    xg::manual_seed(22);
    auto xs = xg::randn({3, 2, 6, 5}, xg::f64).requires_grad_();
    auto ws = xg::randn({4, 2, 3, 3}, xg::f64);
    auto second = [&](const Tensor& weight) {
        auto y = xg::conv2d(xs, weight, Tensor(), {1, 1}, {1, 1});
        auto gx = xg::grad({xg::sum(y * y)}, {xs}, {}, true, true)[0];
        return xg::grad({xg::sum(gx * gx)}, {xs})[0].to_vector<double>();
    };
    const auto only_x = second(ws);
    check_close(only_x, second(ws.detach().requires_grad_()), 1e-12);
    BOOST_TEST(std::any_of(only_x.begin(), only_x.end(), [](double v) { return v != 0; }));
    // An empty batch: an empty output, zero gradients for the weight and the bias.
    auto x0 = xg::zeros({0, 3, 5, 5}).requires_grad_();
    auto w0 = xg::ones({4, 3, 3, 3}).requires_grad_();
    auto b0 = xg::ones({4}).requires_grad_();
    auto y0 = xg::conv2d(x0, w0, b0, {1, 1}, {1, 1});
    BOOST_TEST(y0.shape() == (xg::Shape{0, 4, 5, 5}));
    auto g0 = xg::grad({xg::sum(y0)}, {x0, w0, b0});
    BOOST_TEST(g0[0].shape() == x0.shape());
    check_close(g0[1].to_vector<double>(), std::vector<double>(108, 0.0), 0);
    check_close(g0[2].to_vector<double>(), std::vector<double>(4, 0.0), 0);
}

BOOST_AUTO_TEST_CASE(conv2d_geometries_match_direct_loops) {
    // 40 pseudo-random geometries (kernel, stride, padding, dilation, sizes, groups; "same" paddings
    // among them): values and dx, dw, db against the direct loops, float64.
    std::uint64_t state = 12345;
    auto next = [&](std::int64_t lo, std::int64_t hi) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        return lo + static_cast<std::int64_t>((state >> 33) % static_cast<std::uint64_t>(hi - lo + 1));
    };
    int tried = 0;
    while (tried < 40) {
        const xg::Size2 k{next(1, 3), next(1, 3)}, s{next(1, 2), next(1, 2)}, p{next(0, 2), next(0, 2)},
            d{next(1, 2), next(1, 2)};
        const std::int64_t groups = next(1, 3);
        const std::int64_t n = next(1, 4), c = groups * next(1, 2), o = groups * next(1, 2), h = next(3, 9),
                           w = next(3, 9);
        if (xg::conv_output_size(h, k[0], s[0], p[0], d[0]) <= 0 ||
            xg::conv_output_size(w, k[1], s[1], p[1], d[1]) <= 0)
            continue;
        ++tried;
        auto x = xg::randn({n, c, h, w}, xg::f64).requires_grad_();
        auto wt = xg::randn({o, c / groups, k[0], k[1]}, xg::f64).requires_grad_();
        auto b = xg::randn({o}, xg::f64).requires_grad_();
        xg::Shape shape;
        const auto want = naive_conv(x, wt, b, s, p, d, groups, shape);
        auto y = xg::conv2d(x, wt, b, s, p, d, groups);
        BOOST_TEST_REQUIRE(y.shape() == shape);
        check_close(y.to_vector<double>(), want, 1e-12);
        auto r = xg::randn(shape, xg::f64);
        const auto want_grads = naive_conv_grads(x, wt, r, s, p, d, groups);
        auto grads = xg::grad({xg::sum(y * r)}, {x, wt, b});
        for (int i = 0; i < 3; ++i) check_close(grads[i].to_vector<double>(), want_grads[i], 1e-11);
    }
}

BOOST_AUTO_TEST_CASE(conv2d_errors_name_the_shapes) {
    auto x = xg::zeros({1, 3, 5, 5});
    BOOST_CHECK_THROW(xg::conv2d(x, xg::zeros({4, 2, 3, 3})), xg::ShapeError);
    BOOST_CHECK_THROW(xg::conv2d(x, xg::zeros({4, 3, 7, 7})), xg::ShapeError);
    BOOST_CHECK_THROW(xg::conv2d(x, xg::zeros({4, 3, 3, 3}), xg::zeros({5})), xg::ShapeError);
    BOOST_CHECK_THROW(xg::conv2d(xg::zeros({3, 5, 5}), xg::zeros({4, 3, 3, 3})), xg::ShapeError);
    try {
        xg::conv2d(x, xg::zeros({4, 2, 3, 3}));
    } catch (const xg::ShapeError& e) {
        BOOST_TEST(std::string(e.what()).find("[1,3,5,5]") != std::string::npos);
    }
}

BOOST_AUTO_TEST_CASE(conv2d_gradcheck_and_gradgradcheck) {
    xg::manual_seed(5);
    auto x = xg::randn({2, 2, 4, 4}, xg::f64).requires_grad_();
    auto w = xg::randn({4, 1, 2, 3}, xg::f64).requires_grad_();
    auto b = xg::randn({4}, xg::f64).requires_grad_();
    auto f = [](const V& in) { return xg::conv2d(in[0], in[1], in[2], {2, 1}, {1, 1}, {1, 1}, 2); };
    XG_CHECK_GRAD(f, {x, w, b});
    XG_CHECK_GRADGRAD(f, {x, w, b});
    // groups 1 (the chunked kernels) with a bias and a "same" padding.
    auto w1 = xg::randn({3, 2, 3, 3}, xg::f64).requires_grad_();
    auto b1 = xg::randn({3}, xg::f64).requires_grad_();
    auto same = [](const V& in) { return xg::conv2d(in[0], in[1], in[2], {1, 1}, {1, 1}); };
    XG_CHECK_GRAD(same, {x, w1, b1});
    XG_CHECK_GRADGRAD(same, {x, w1, b1});
    // Depthwise with unit strides (the padded-plane kernels), two outputs per channel, dilated.
    auto w3 = xg::randn({4, 1, 2, 2}, xg::f64).requires_grad_();
    auto depthwise = [](const V& in) { return xg::conv2d(in[0], in[1], in[2], {1, 1}, {1, 0}, {1, 2}, 2); };
    XG_CHECK_GRAD(depthwise, {x, w3, b});
    XG_CHECK_GRADGRAD(depthwise, {x, w3, b});
    auto dil = [](const V& in) { return xg::conv2d(in[0], in[1], Tensor(), {1, 1}, {0, 1}, {2, 1}, 1); };
    auto w2 = xg::randn({2, 2, 2, 2}, xg::f64).requires_grad_();
    XG_CHECK_GRAD(dil, {x, w2});
    XG_CHECK_GRADGRAD(dil, {x, w2});
}

BOOST_AUTO_TEST_CASE(im2col_col2im_gradcheck) {
    xg::manual_seed(6);
    auto x = xg::randn({1, 2, 4, 3}, xg::f64).requires_grad_();
    auto f = [](const V& in) { return xg::im2col(in[0], {2, 2}, {1, 2}, {1, 0}, {1, 1}); };
    XG_CHECK_GRAD(f, {x});
    XG_CHECK_GRADGRAD(f, {x});
    auto c = xg::randn({8, 5}, xg::f64).requires_grad_();
    auto g = [](const V& in) { return xg::col2im(in[0], {1, 2, 4, 3}, {2, 2}, {1, 2}, {1, 0}, {1, 1}); };
    XG_CHECK_GRAD(g, {c});
    XG_CHECK_GRADGRAD(g, {c});
}

BOOST_AUTO_TEST_CASE(max_pool2d_values_and_first_max_gradient) {
    auto x = xg::tensor({1, 5, 2, 0,  //
                         3, 4, 7, 7,  //
                         0, 0, 9, 1,  //
                         2, 0, 1, 9},
                        {1, 1, 4, 4}, xg::f64)
                 .requires_grad_();
    auto y = xg::max_pool2d(x, {2, 2});
    check_close(y.to_vector<double>(), {5, 7, 2, 9}, 0);
    xg::sum(y).backward();
    // Ties (7, 7 and 9, 9): the gradient goes to the first maximum in row-major order, as PyTorch.
    check_close(x.grad().to_vector<double>(), {0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0}, 0);
    // Padding counts as -inf: an all-negative border still picks an image value.
    auto n = xg::full({1, 1, 2, 2}, -3.0, xg::f64);
    check_close(xg::max_pool2d(n, {2, 2}, {1, 1}, {1, 1}).to_vector<double>(), std::vector<double>(9, -3.0), 0);
    // NaN propagates.
    auto nan = xg::tensor({1, std::numeric_limits<double>::quiet_NaN(), 2, 3}, {1, 1, 2, 2}, xg::f64);
    BOOST_TEST(std::isnan(xg::max_pool2d(nan, {2, 2}).item<double>()));
    BOOST_CHECK_THROW(xg::max_pool2d(n, {2, 2}, {1, 1}, {2, 2}), xg::ValueError);
}

BOOST_AUTO_TEST_CASE(max_pool2d_gradcheck) {
    xg::manual_seed(7);
    auto x = xg::randn({2, 2, 5, 4}, xg::f64).requires_grad_();
    auto f = [](const V& in) { return xg::max_pool2d(in[0], {3, 2}, {2, 2}, {1, 1}, {1, 1}); };
    XG_CHECK_GRAD(f, {x});
    XG_CHECK_GRADGRAD(f, {x});
    // The 2x2 / stride 2 fast path (odd sizes drop the last row and column).
    auto f2 = [](const V& in) { return xg::max_pool2d(in[0], {2, 2}); };
    XG_CHECK_GRAD(f2, {x});
    XG_CHECK_GRADGRAD(f2, {x});
}

BOOST_AUTO_TEST_CASE(max_pool2d_fast_path_matches_the_general_loop) {
    xg::manual_seed(17);
    auto x = xg::randn({2, 3, 7, 6}, xg::f64).requires_grad_();
    // A 2x2 / stride 2 pool takes the fast path; the same max as a (1,2) pool then a (2,1) pool takes the
    // general one twice.
    auto fast = xg::max_pool2d(x, {2, 2});
    auto general = xg::max_pool2d(xg::max_pool2d(x, {1, 2}), {2, 1});
    BOOST_TEST(fast.to_vector<double>() == general.to_vector<double>(), boost::test_tools::per_element());
    xg::sum(fast).backward();
    auto g1 = x.grad().to_vector<double>();
    x.zero_grad();
    xg::sum(general).backward();
    BOOST_TEST(g1 == x.grad().to_vector<double>(), boost::test_tools::per_element());
    // By hand: the max of the four taps of the first image plane.
    const auto xv = x.to_vector<double>(), fv = fast.to_vector<double>();
    for (int oh = 0; oh < 3; ++oh)
        for (int ow = 0; ow < 3; ++ow) {
            double m = -1e300;
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j) m = std::max(m, xv[(2 * oh + i) * 6 + 2 * ow + j]);
            BOOST_TEST(fv[oh * 3 + ow] == m);
        }
}

BOOST_AUTO_TEST_CASE(max_pool2d_float32_vector_path_matches_the_general_loop) {
    // float32 2x2 pools run 16 windows at a time: widths 69 (34 windows: 16 + 16 + 2 per row) and 7 (3), an
    // odd height, small integers (many ties), a NaN and -inf in the first plane.
    for (const std::int64_t w : {69, 7}) {
        const std::int64_t h = 9, planes = 6;
        std::vector<float> v(static_cast<std::size_t>(planes * h * w));
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 7919) % 5);
        v[3] = std::numeric_limits<float>::quiet_NaN();
        v[static_cast<std::size_t>(w) + 40 % w] = -std::numeric_limits<float>::infinity();
        auto x = xg::tensor(std::vector<double>(v.begin(), v.end()), {2, 3, h, w}, xg::f32).requires_grad_();
        auto fast = xg::max_pool2d(x, {2, 2});
        auto general = xg::max_pool2d(xg::max_pool2d(x, {1, 2}), {2, 1});
        BOOST_TEST(fast.shape() == (xg::Shape{2, 3, h / 2, w / 2}));
        const auto fv = fast.to_vector<float>(), gv = general.to_vector<float>();
        BOOST_TEST_REQUIRE(fv.size() == gv.size());
        BOOST_TEST(std::isnan(fv[1]));  // the window holding v[3]
        for (std::size_t i = 0; i < fv.size(); ++i)
            if (!std::isnan(gv[i])) BOOST_TEST(fv[i] == gv[i], "window " << i);
        // The gradient goes to the same element (the first maximum in row-major order).
        xg::sum(fast).backward();
        auto g1 = x.grad().to_vector<float>();
        x.zero_grad();
        xg::sum(general).backward();
        BOOST_TEST(g1 == x.grad().to_vector<float>(), boost::test_tools::per_element());
        BOOST_TEST(std::count(g1.begin(), g1.end(), 1.0f) == static_cast<std::ptrdiff_t>(fv.size()));
    }
}

BOOST_AUTO_TEST_CASE(avg_pool2d_values_and_gradcheck) {
    auto x = xg::arange(0, 16, 1, xg::f64);
    auto y = xg::avg_pool2d(xg::reshape(x, {1, 1, 4, 4}), {2, 2});
    check_close(y.to_vector<double>(), {2.5, 4.5, 10.5, 12.5}, 1e-12);
    // 3x3 of 0..8, kernel 2, stride 1, padding 1: corner window holds only x[0] = 0 and x[1]..: compare
    // both divisor conventions by hand at the (0,1) window, which covers x[0] and x[1].
    auto z = xg::reshape(xg::arange(1, 10, 1, xg::f64), {1, 1, 3, 3});
    auto inc = xg::avg_pool2d(z, {2, 2}, {1, 1}, {1, 1}, true);
    auto exc = xg::avg_pool2d(z, {2, 2}, {1, 1}, {1, 1}, false);
    BOOST_TEST((inc.shape() == xg::Shape{1, 1, 4, 4}));
    BOOST_TEST(inc.to_vector<double>()[1] == (1.0 + 2.0) / 4.0);
    BOOST_TEST(exc.to_vector<double>()[1] == (1.0 + 2.0) / 2.0);
    BOOST_TEST(exc.to_vector<double>()[5] == (1.0 + 2.0 + 4.0 + 5.0) / 4.0);
    xg::manual_seed(8);
    auto r = xg::randn({2, 2, 5, 4}, xg::f64).requires_grad_();
    auto f = [](const V& in) { return xg::avg_pool2d(in[0], {3, 2}, {2, 1}, {1, 1}, false); };
    XG_CHECK_GRAD(f, {r});
    XG_CHECK_GRADGRAD(f, {r});
}

BOOST_AUTO_TEST_CASE(adaptive_avg_pool2d_bins_and_gradcheck) {
    xg::manual_seed(9);
    auto x = xg::randn({2, 3, 5, 7}, xg::f64);
    auto y = xg::adaptive_avg_pool2d(x, {3, 2});
    BOOST_TEST((y.shape() == xg::Shape{2, 3, 3, 2}));
    const auto X = x.to_vector<double>(), Y = y.to_vector<double>();
    for (std::int64_t p = 0; p < 6; ++p)
        for (std::int64_t i = 0; i < 3; ++i)
            for (std::int64_t j = 0; j < 2; ++j) {
                const std::int64_t h0 = i * 5 / 3, h1 = ((i + 1) * 5 + 2) / 3, w0 = j * 7 / 2,
                                   w1 = ((j + 1) * 7 + 1) / 2;
                double s = 0;
                for (auto h = h0; h < h1; ++h)
                    for (auto w = w0; w < w1; ++w) s += X[(p * 5 + h) * 7 + w];
                BOOST_TEST(std::abs(Y[(p * 3 + i) * 2 + j] - s / double((h1 - h0) * (w1 - w0))) < 1e-12);
            }
    // Global and divisible sizes take the mean / avg_pool paths: same numbers as the bins.
    check_close(xg::adaptive_avg_pool2d(x, {1, 1}).to_vector<double>(), xg::mean(x, {2, 3}).to_vector<double>(), 1e-12);
    auto x4 = xg::randn({1, 2, 4, 6}, xg::f64);
    check_close(xg::adaptive_avg_pool2d(x4, {2, 3}).to_vector<double>(), xg::avg_pool2d(x4, {2, 2}).to_vector<double>(),
                1e-12);
    auto r = xg::randn({1, 2, 5, 4}, xg::f64).requires_grad_();
    auto f = [](const V& in) { return xg::adaptive_avg_pool2d(in[0], {3, 3}); };
    XG_CHECK_GRAD(f, {r});
    XG_CHECK_GRADGRAD(f, {r});
}

BOOST_AUTO_TEST_SUITE_END()

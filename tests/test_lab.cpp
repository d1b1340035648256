// The activation lab's analysis (xg::lab): check catches a wrong derivative and names the worst
// point, finds kinks, jumps, saturation, sign changes and inf/NaN; plot writes SVG.
#include <boost/test/unit_test.hpp>
#include <xgrad/ops/activation_lab.hpp>
#include <xgrad/xgrad.hpp>

#include <cmath>
#include <string>

namespace {
// A small sweep keeps the suite fast (gradcheck is quadratic in the chunk size).
xg::lab::CheckOptions quick(double lo = -4, double hi = 4, std::int64_t points = 161) {
    xg::lab::CheckOptions o;
    o.lo = lo;
    o.hi = hi;
    o.points = points;
    o.edges = {0.0, 1e-8, -1e-8, 20.0, -20.0, 88.0, -88.0, 1e4, -1e4};
    o.chunk = 64;
    return o;
}

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(lab)

BOOST_AUTO_TEST_CASE(check_catches_a_wrong_derivative_and_names_the_worst_point) {
    // sigmoid with a hand-written derivative that is wrong by a bump centred on x = 2.5.
    auto bad = xg::activation(
        "bad_sigmoid", [](auto x) { return xg::sigmoid(x); },
        [](auto x, auto y) { return y * (1 - y) + xg::exp(-(x - 2.5) * (x - 2.5) * 400.0) * 0.3; });
    const auto r = xg::lab::check("bad_sigmoid", bad.info(), quick());
    BOOST_TEST(!r.ok());
    BOOST_TEST(r.compared);
    BOOST_TEST(r.disagreement_x == 2.5);
    const double s25 = 1 / (1 + std::exp(-2.5));
    BOOST_TEST(std::fabs(r.max_disagreement - 0.3 / (1 + s25 * (1 - s25))) < 1e-9);  // relative to 1 + |auto|
    BOOST_TEST(!r.grad.ok);
    BOOST_TEST(r.grad.worst_x == 2.5);
    BOOST_TEST(std::fabs(r.grad.analytical - r.grad.numerical - 0.3) < 1e-3);
    BOOST_TEST(r.kinks.empty());  // f itself is smooth
    BOOST_TEST(r.text().find("worst point x = 2.5") != std::string::npos, r.text());
    // The correct hand-written derivative passes everything.
    auto good = xg::activation(
        "good_sigmoid", [](auto x) { return xg::sigmoid(x); }, [](auto, auto y) { return y * (1 - y); });
    const auto g = xg::lab::check("good_sigmoid", good.info(), quick());
    BOOST_TEST(g.ok(), g.text());
    BOOST_TEST(g.max_disagreement < 1e-12);
}

BOOST_AUTO_TEST_CASE(check_of_the_builtins_passes) {
    for (const char* name : {"relu", "hardswish", "gelu", "softplus", "step", "selu", "mish", "elu", "softsign"}) {
        const auto r = xg::lab::check(name, quick());
        BOOST_TEST(r.ok(), r.text());
    }
    const auto s = xg::lab::check("softmax", quick());  // along an axis: gradchecks only
    BOOST_TEST(!s.elementwise);
    BOOST_TEST(s.ok(), s.text());
}

BOOST_AUTO_TEST_CASE(kinks_jumps_saturation_and_sign_changes) {
    auto o = quick();
    o.gradchecks = false;
    const auto relu = xg::lab::check("relu", o);
    BOOST_TEST_REQUIRE(relu.kinks.size() == 1u);
    BOOST_TEST(relu.kinks[0].x == 0.0);
    BOOST_TEST(relu.kinks[0].left == 0.0);
    BOOST_TEST(std::fabs(relu.kinks[0].right - 1.0) < 1e-6);
    BOOST_TEST(!relu.kinks[0].jump);
    BOOST_TEST_REQUIRE(relu.saturated.size() == 1u);
    BOOST_TEST(relu.saturated[0].lo == -4.0);
    BOOST_TEST(relu.saturated[0].hi == 0.0);

    const auto hardtanh = xg::lab::check("hardtanh", o);
    BOOST_TEST_REQUIRE(hardtanh.kinks.size() == 2u);
    BOOST_TEST(hardtanh.kinks[0].x == -1.0);
    BOOST_TEST(hardtanh.kinks[1].x == 1.0);

    const auto shrink = xg::lab::check("hardshrink", o);
    BOOST_TEST_REQUIRE(shrink.kinks.size() == 2u);
    BOOST_TEST(shrink.kinks[0].jump);
    BOOST_TEST(std::fabs(shrink.kinks[1].jump_size - 0.5) < 1e-5);

    // elu (alpha 1) and softsign are C1: f is smooth at 0 but f'' jumps there.
    const auto elu = xg::lab::check("elu", o);
    BOOST_TEST(elu.kinks.empty());
    BOOST_TEST_REQUIRE(elu.derivative_kinks.size() == 1u);
    BOOST_TEST(elu.derivative_kinks[0].x == 0.0);
    BOOST_TEST(std::fabs(elu.derivative_kinks[0].left - 1.0) < 1e-4);   // f''(0-) = e^0
    BOOST_TEST(std::fabs(elu.derivative_kinks[0].right - 0.0) < 1e-4);  // f''(0+) = 0
    const auto softsign = xg::lab::check("softsign", o);
    BOOST_TEST_REQUIRE(softsign.derivative_kinks.size() == 1u);
    BOOST_TEST(std::fabs(softsign.derivative_kinks[0].left - 2.0) < 1e-4);

    const auto gelu = xg::lab::check("gelu", o);
    BOOST_TEST(gelu.kinks.empty());
    BOOST_TEST_REQUIRE(gelu.sign_changes.size() == 1u);
    BOOST_TEST(std::fabs(gelu.sign_changes[0] - (-0.75179)) < 2e-3);  // gelu'(x) = 0 at x = -0.7518

    auto wide = o;
    wide.lo = -10;
    wide.hi = 10;
    wide.points = 401;
    const auto sig = xg::lab::check("sigmoid", wide);
    BOOST_TEST_REQUIRE(sig.saturated.size() == 2u);  // |sigmoid'| < 1e-3 beyond |x| = 6.9
    BOOST_TEST(std::fabs(sig.saturated[0].hi + 6.9) < 0.06);
    BOOST_TEST(std::fabs(sig.saturated[1].lo - 6.9) < 0.06);
    BOOST_TEST(sig.saturated_edges.size() == 6u);  // +-20, +-88, +-1e4
}

BOOST_AUTO_TEST_CASE(a_kink_between_sweep_points_is_located) {
    auto bent = xg::activation("bent_at_0123", [](auto x) { return xg::where(x > 0.123, 3 * x - 0.246, x); });
    auto o = quick();
    o.gradchecks = false;
    const auto r = xg::lab::check("bent_at_0123", bent.info(), o);
    BOOST_TEST_REQUIRE(r.kinks.size() == 1u, r.text());
    BOOST_TEST(std::fabs(r.kinks[0].x - 0.123) < 1e-6);
    BOOST_TEST(std::fabs(r.kinks[0].left - 1.0) < 1e-4);
    BOOST_TEST(std::fabs(r.kinks[0].right - 3.0) < 1e-4);
}

BOOST_AUTO_TEST_CASE(inf_and_nan_behaviour) {
    auto o = quick();
    o.gradchecks = false;
    // e^-x overflows in float32 below about -88: the quotient rule then meets inf / inf.
    auto naive = xg::activation("naive_swish_t", [](auto x) { return x / (1 + xg::exp(-x)); });
    const auto r = xg::lab::check("naive_swish_t", naive.info(), o);
    BOOST_TEST(!r.ok());
    BOOST_TEST(!r.nonfinite.empty());
    BOOST_TEST(r.text().find("f'(-10000) = nan [float32]") != std::string::npos, r.text());
    auto stable = xg::activation("stable_swish_t", [](auto x) { return x * xg::sigmoid(x); });
    const auto s = xg::lab::check("stable_swish_t", stable.info(), o);
    BOOST_TEST(s.nonfinite.empty(), s.text());
    BOOST_TEST(s.text().find("f(+inf) = inf") != std::string::npos, s.text());
}

BOOST_AUTO_TEST_CASE(plot_writes_svg_with_three_panels) {
    const auto a = xg::lab::sample("gelu", -5, 5, 201);
    const auto b = xg::lab::sample("hardswish", -5, 5, 201);
    BOOST_TEST(a.x.size() == 201u);
    BOOST_TEST(std::fabs(a.d1[100] - 0.5) < 1e-12);  // gelu'(0) = 1/2
    const std::string svg = xg::lab::svg_plot({a, b});
    BOOST_TEST(svg.rfind("<svg", 0) == 0);
    BOOST_TEST(svg.find("</svg>") != std::string::npos);
    BOOST_TEST(count(svg, "class=\"panel\"") == 3u);
    // hardswish' jumps at +-3 but every panel still gets one line per activation.
    BOOST_TEST(count(svg, "data-name=\"gelu\"") == 3u);
    BOOST_TEST(count(svg, "data-name=\"hardswish\"") >= 3u);
    BOOST_TEST(svg.find("f''(x)") != std::string::npos);
    BOOST_CHECK_THROW(xg::lab::sample("softmax", -1, 1), xg::ValueError);
    BOOST_CHECK_THROW(xg::lab::svg_plot({}), xg::ValueError);
}

BOOST_AUTO_TEST_SUITE_END()

// Helpers shared by the ops/engine test suites (test_ops_*.cpp, test_engine.cpp, test_factories.cpp).
#pragma once
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>
#include <xgrad/autograd/gradcheck_test.hpp>
#include <xgrad/xgrad.hpp>

namespace xgt {

using xg::Shape;
using xg::Tensor;
using Inputs = std::vector<Tensor>;

/// A float64 leaf that requires grad.
inline Tensor leaf(const std::vector<double>& values, const Shape& shape) {
    return xg::tensor(values, shape, xg::f64).requires_grad_();
}

/// A float64 leaf of uniform values in [lo, hi) that requires grad.
inline Tensor rleaf(const Shape& shape, double lo = -1.0, double hi = 1.0) {
    return xg::uniform(shape, lo, hi, xg::f64).requires_grad_();
}

/// True when a and b agree: both NaN, equal infinities, or |a - b| <= atol + rtol |b|.
inline bool close(double a, double b, double rtol, double atol) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    if (std::isinf(a) || std::isinf(b)) return a == b;
    return std::fabs(a - b) <= atol + rtol * std::fabs(b);
}

/// Checks every value of t against `expected` (flat, row-major).
inline void check_values(const Tensor& t, const std::vector<double>& expected, double rtol = 1e-12,
                         double atol = 1e-12) {
    const auto v = t.to_vector<double>();
    BOOST_REQUIRE_EQUAL(v.size(), expected.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        BOOST_CHECK_MESSAGE(close(v[i], expected[i], rtol, atol),
                            "element " << i << ": got " << v[i] << ", expected " << expected[i] << " in " << t
                                       << " expected "
                                       << xg::tensor(expected, {static_cast<std::int64_t>(expected.size())}, xg::f64));
}

/// Checks shape and dtype of t.
inline void check_meta(const Tensor& t, const Shape& shape, xg::Dtype dtype) {
    BOOST_CHECK_MESSAGE(t.shape() == shape,
                        "shape " << xg::shape_str(t.shape()) << ", expected " << xg::shape_str(shape));
    BOOST_CHECK_MESSAGE(t.dtype() == dtype,
                        "dtype " << xg::dtype_name(t.dtype()) << ", expected " << xg::dtype_name(dtype));
}

/// The exact bits of t's values (for determinism checks).
inline std::vector<unsigned char> bits(const Tensor& t) {
    const auto* p = static_cast<const unsigned char*>(t.array().raw());
    return std::vector<unsigned char>(p, p + t.numel() * static_cast<std::int64_t>(xg::dtype_size(t.dtype())));
}

/// Predicate for BOOST_CHECK_EXCEPTION: the message contains every fragment (printed when not).
inline std::function<bool(const std::exception&)> msg_has(std::vector<std::string> parts) {
    return [parts](const std::exception& e) {
        const std::string what = e.what();
        for (const auto& p : parts)
            if (what.find(p) == std::string::npos) {
                BOOST_TEST_MESSAGE("message \"" << what << "\" lacks \"" << p << "\"");
                return false;
            }
        return true;
    };
}

/// The gradient of sum(f(inputs) * weights) with respect to every input, recorded (create_graph):
/// gradcheck/gradgradcheck of it check the second and third derivatives of f.
template <class F>
std::function<std::vector<Tensor>(const Inputs&)> gradient_of(F f) {
    return [f](const Inputs& in) {
        xg::EnableGradGuard enable;  // gradcheck evaluates its function under no-grad
        const Tensor y = f(in);
        xg::manual_seed(1234);  // fixed weights: the same function at every evaluation
        const Tensor w = xg::uniform(y.shape(), 0.5, 1.5, y.dtype());
        return xg::grad({xg::sum(y * w)}, in, {}, true, true, true);
    };
}

/// Runs f at 1 and at 2 threads and returns both results (thread count restored to 2 after).
template <class F>
std::pair<Tensor, Tensor> at_1_and_2_threads(F f) {
    xg::set_num_threads(1);
    Tensor a = f();
    xg::set_num_threads(2);
    Tensor b = f();
    return {a, b};
}

}  // namespace xgt

/// gradcheck and gradgradcheck (float64 central differences) of fn at the inputs.
#define XGT_CHECK_GRADS(fn, ...)            \
    do {                                    \
        XG_CHECK_GRAD(fn, __VA_ARGS__);     \
        XG_CHECK_GRADGRAD(fn, __VA_ARGS__); \
    } while (0)

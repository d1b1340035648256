// Comparisons of a fused op with its unfused formula, shared by the fusion suites (ops_linear,
// nn_fused): ulp distance in float32, relative closeness.
#pragma once
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <xgrad/xgrad.hpp>

namespace xgt {

/// Largest distance in units in the last place between two float32 tensors of one size.
inline std::int64_t max_ulp(const xg::Tensor& a, const xg::Tensor& b) {
    const auto va = a.to_vector<float>(), vb = b.to_vector<float>();
    BOOST_REQUIRE_EQUAL(va.size(), vb.size());
    std::int64_t worst = 0;
    for (std::size_t i = 0; i < va.size(); ++i) {
        std::int32_t ia, ib;
        std::memcpy(&ia, &va[i], 4);
        std::memcpy(&ib, &vb[i], 4);
        // Map the sign-magnitude bits to a monotonic integer line (-0 and +0 meet at 0).
        if (ia < 0) ia = std::numeric_limits<std::int32_t>::min() - ia;
        if (ib < 0) ib = std::numeric_limits<std::int32_t>::min() - ib;
        worst = std::max<std::int64_t>(worst, std::abs(static_cast<std::int64_t>(ia) - ib));
    }
    return worst;
}

/// Checks that a and b have one shape and agree to |a - b| / (1 + |b|) <= tol everywhere.
inline void check_close(const xg::Tensor& a, const xg::Tensor& b, double tol) {
    BOOST_REQUIRE(a.shape() == b.shape());
    const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
    double worst = 0;
    for (std::size_t i = 0; i < va.size(); ++i)
        worst = std::max(worst, std::abs(va[i] - vb[i]) / (1.0 + std::abs(vb[i])));
    BOOST_TEST(worst <= tol);
}

}  // namespace xgt

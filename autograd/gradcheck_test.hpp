// Boost.Test integration of gradcheck: a failing check fails the test case with the report.
#pragma once
#include <boost/test/unit_test.hpp>

#include "gradcheck.hpp"

/// Fails the current Boost.Test case with gradcheck's report when fn's gradients are wrong.
#define XG_CHECK_GRAD(fn, ...)                                                         \
    do {                                                                               \
        const auto xg_gc_result_ = ::xg::gradcheck((fn), __VA_ARGS__);                 \
        BOOST_CHECK_MESSAGE(static_cast<bool>(xg_gc_result_), xg_gc_result_.report()); \
    } while (0)

/// Fails the current Boost.Test case when fn's second derivatives are wrong.
#define XG_CHECK_GRADGRAD(fn, ...)                                                     \
    do {                                                                               \
        const auto xg_gc_result_ = ::xg::gradgradcheck((fn), __VA_ARGS__);             \
        BOOST_CHECK_MESSAGE(static_cast<bool>(xg_gc_result_), xg_gc_result_.report()); \
    } while (0)

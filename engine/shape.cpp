#include "shape.hpp"

#include <algorithm>

#include "error.hpp"

// GCC 12 warns that moving a Shape may read past its 4 inline dimensions; small_vector moves
// more than 4 by taking the heap block, never by copying (a false -Wstringop-overread).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wstringop-overread"
#endif

namespace xg {

std::int64_t shape_numel(const Shape& s) {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

std::string shape_str(const Shape& s) {
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i) r += ",";
        r += std::to_string(s[i]);
    }
    return r + "]";
}

Shape contiguous_strides(const Shape& s) {
    Shape st(s.size());
    std::int64_t acc = 1;
    for (std::size_t i = s.size(); i-- > 0;) {
        st[i] = acc;
        acc *= s[i];
    }
    return st;
}

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
    if (a == b) return a;
    const std::size_t n = std::max(a.size(), b.size());
    Shape r(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        if (da != db && da != 1 && db != 1)
            throw ShapeError(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                             " cannot be broadcast (" + std::to_string(da) + " vs " + std::to_string(db) +
                             " at dimension " + std::to_string(i) + ")");
        r[i] = da == 1 ? db : da;
    }
    return r;
}

int normalize_axis(std::int64_t axis, std::size_t ndim, const char* op) {
    const auto n = static_cast<std::int64_t>(ndim);
    // A 0-d tensor accepts axis 0 or -1 (as PyTorch); callers handle the 0-d case themselves.
    const bool ok = n == 0 ? (axis == 0 || axis == -1) : (axis >= -n && axis < n);
    if (!ok)
        throw IndexError(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for a " +
                         std::to_string(ndim) + "-d tensor");
    if (n == 0) return 0;
    return static_cast<int>(axis < 0 ? axis + n : axis);
}

std::vector<int> normalize_axes(const std::vector<std::int64_t>& axes, std::size_t ndim, const char* op) {
    std::vector<int> r;
    if (axes.empty()) {
        for (std::size_t i = 0; i < ndim; ++i) r.push_back(static_cast<int>(i));
        return r;
    }
    for (auto a : axes) r.push_back(normalize_axis(a, ndim, op));
    std::sort(r.begin(), r.end());
    if (std::adjacent_find(r.begin(), r.end()) != r.end())
        throw IndexError(std::string(op) + ": an axis is repeated in the axis list");
    if (ndim == 0) r.clear();
    return r;
}

}  // namespace xg

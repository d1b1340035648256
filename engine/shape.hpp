// Shapes, broadcasting and axis normalisation.
#pragma once
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace xg {

/// A tensor shape: sizes of each dimension, outermost first. {} is a 0-d (scalar) shape.
/// A std::vector-like sequence that keeps up to 4 dimensions inline: every array has a shape,
/// and a heap block per shape was most of the mallocs of a small graph (and what two threads
/// building graphs at once fought over). Converts to and from std::vector<std::int64_t>.
class Shape : public boost::container::small_vector<std::int64_t, 4> {
    using Base = boost::container::small_vector<std::int64_t, 4>;

public:
    using Base::Base;
    Shape() = default;
    Shape(std::initializer_list<std::int64_t> dims) : Base(dims) {}
    Shape(const std::vector<std::int64_t>& dims) : Base(dims.begin(), dims.end()) {}
    operator std::vector<std::int64_t>() const { return std::vector<std::int64_t>(begin(), end()); }
    friend bool operator==(const Shape& a, const Shape& b) {
        return static_cast<const Base&>(a) == static_cast<const Base&>(b);
    }
    friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
};

/// Number of elements of a shape (1 for {}).
std::int64_t shape_numel(const Shape& s);
/// "[2,3]" for error messages and printing.
std::string shape_str(const Shape& s);
/// Row-major strides in elements.
Shape contiguous_strides(const Shape& s);
/// NumPy broadcast of two shapes; throws ShapeError naming `op` when they are incompatible.
Shape broadcast_shape(const Shape& a, const Shape& b, const char* op);
/// Maps a possibly negative axis into [0, ndim); throws IndexError naming `op`.
int normalize_axis(std::int64_t axis, std::size_t ndim, const char* op);
/// Normalises and sorts a list of axes (empty list = all axes); throws on duplicates.
std::vector<int> normalize_axes(const std::vector<std::int64_t>& axes, std::size_t ndim, const char* op);

}  // namespace xg

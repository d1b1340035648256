// Shapes, broadcasting and axis normalisation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace xg {

/// A tensor shape: sizes of each dimension, outermost first. {} is a 0-d (scalar) shape.
using Shape = std::vector<std::int64_t>;

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

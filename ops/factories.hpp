// ops/: tensor factories and the seeded random number generator.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "../autograd/tensor.hpp"

namespace xg {

/// A tensor from values in row-major order; shape defaults to 1-D of values.size().
Tensor tensor(const std::vector<double>& values, Shape shape = {-1}, Dtype dtype = Dtype::f32);
/// A tensor from an initializer list, e.g. xg::tensor({1, 2, 3, 4}, {2, 2}).
Tensor tensor(std::initializer_list<double> values, Shape shape = {-1}, Dtype dtype = Dtype::f32);
/// An int64 tensor (labels, indices).
Tensor tensor_i64(const std::vector<std::int64_t>& values, Shape shape = {-1});
/// A 0-d tensor.
Tensor scalar(double value, Dtype dtype = Dtype::f32);
/// All zeros.
Tensor zeros(const Shape& shape, Dtype dtype = Dtype::f32);
/// All ones.
Tensor ones(const Shape& shape, Dtype dtype = Dtype::f32);
/// All `value`.
Tensor full(const Shape& shape, double value, Dtype dtype = Dtype::f32);
/// Zeros / ones / value with the shape and dtype of `like`.
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
Tensor full_like(const Tensor& like, double value);
/// start, start+step, ... < stop (ceil((stop - start) / step) elements; step may be negative).
Tensor arange(double start, double stop, double step = 1.0, Dtype dtype = Dtype::f32);
/// n evenly spaced values from start to stop inclusive.
Tensor linspace(double start, double stop, std::int64_t n, Dtype dtype = Dtype::f32);
/// Identity matrix n x m (m defaults to n).
Tensor eye(std::int64_t n, std::int64_t m = -1, Dtype dtype = Dtype::f32);

/// Seeds xgrad's generator (counter-based: element i of a call is a hash of the seed and a counter,
/// and successive calls use fresh counters). The same seed gives the same numbers at any thread count.
void manual_seed(std::uint64_t seed);
/// Uniform on [0, 1) (never 1, also in float32). Floating dtypes only.
Tensor rand(const Shape& shape, Dtype dtype = Dtype::f32);
/// Standard normal (Box-Muller). Floating dtypes only.
Tensor randn(const Shape& shape, Dtype dtype = Dtype::f32);
/// Uniform on [low, high).
Tensor uniform(const Shape& shape, double low, double high, Dtype dtype = Dtype::f32);
/// Normal with the given mean and standard deviation.
Tensor normal(const Shape& shape, double mean, double stddev, Dtype dtype = Dtype::f32);
/// Integers uniform on [low, high) (int64).
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape);
/// Random permutation of 0..n-1 (int64), from the same generator.
Tensor randperm(std::int64_t n);

}  // namespace xg

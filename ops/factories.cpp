#include "factories.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>

#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"

namespace xg {

namespace {

Shape resolve_shape(Shape shape, std::size_t n, const char* op) {
    if (shape.size() == 1 && shape[0] == -1) return {static_cast<std::int64_t>(n)};
    if (shape_numel(shape) != static_cast<std::int64_t>(n))
        throw ShapeError(std::string(op) + ": " + std::to_string(n) + " values do not fill shape " + shape_str(shape));
    return shape;
}

// Counter-based generator: element i of a call is a hash of (seed, offset + i), so the numbers do
// not depend on how the work is split across threads.
std::atomic<std::uint64_t> g_seed{0x853c49e6748fea9bULL};
std::atomic<std::uint64_t> g_offset{0};

inline std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
inline double unit(std::uint64_t seed, std::uint64_t counter) {
    return static_cast<double>(splitmix64(seed ^ splitmix64(counter)) >> 11) * 0x1.0p-53;  // [0, 1)
}

// Fills element i with f(seed, base + per * i), where f may use counters c .. c + per - 1; advances
// the generator past every counter used, so that successive calls never share random bits.
// Grains (elements per task) from the measured cost per element here and the ~4 us at which two
// threads start to pay off (engine/kernels.hpp): uniform 0.5 ns, randint 3 ns, normal 29 ns.
constexpr std::int64_t kGrainUniform = 8192, kGrainRandint = 1024, kGrainNormal = 128;

template <class F>
Array generate(const Shape& shape, Dtype dtype, const char* op, std::uint64_t per, std::int64_t grain, F f) {
    Array r(shape, dtype);
    const std::uint64_t seed = g_seed.load();
    const std::uint64_t base = g_offset.fetch_add(per * static_cast<std::uint64_t>(r.numel()));
    detail::dispatch(dtype, op, [&]<class T>() {
        T* p = r.data<T>();
        detail::parallel_for(r.numel(), grain, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t i = b; i < e; ++i)
                p[i] = static_cast<T>(f(seed, base + per * static_cast<std::uint64_t>(i)));
        });
    });
    return r;
}

void check_shape(const Shape& s, const char* op) {
    for (auto d : s)
        if (d < 0) throw ValueError(std::string(op) + ": negative dimension in shape " + shape_str(s));
}

}  // namespace

Tensor tensor(const std::vector<double>& values, Shape shape, Dtype dtype) {
    shape = resolve_shape(std::move(shape), values.size(), "tensor");
    Array r(shape, dtype);
    detail::dispatch(dtype, "tensor", [&]<class T>() {
        T* p = r.data<T>();
        for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
    });
    return Tensor(std::move(r));
}

Tensor tensor(std::initializer_list<double> values, Shape shape, Dtype dtype) {
    return tensor(std::vector<double>(values), std::move(shape), dtype);
}

Tensor tensor_i64(const std::vector<std::int64_t>& values, Shape shape) {
    shape = resolve_shape(std::move(shape), values.size(), "tensor_i64");
    Array r(shape, Dtype::i64);
    std::copy(values.begin(), values.end(), r.data<std::int64_t>());
    return Tensor(std::move(r));
}

Tensor scalar(double value, Dtype dtype) { return Tensor(engine::full({}, dtype, value)); }
Tensor zeros(const Shape& shape, Dtype dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, Dtype dtype) { return full(shape, 1.0, dtype); }
Tensor full(const Shape& shape, double value, Dtype dtype) {
    check_shape(shape, "full");
    return Tensor(engine::full(shape, dtype, value));
}
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), like.dtype()); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), like.dtype()); }
Tensor full_like(const Tensor& like, double value) { return full(like.shape(), value, like.dtype()); }

Tensor arange(double start, double stop, double step, Dtype dtype) {
    if (step == 0 || !std::isfinite(step) || !std::isfinite(start) || !std::isfinite(stop))
        throw ValueError("arange: start, stop and step must be finite and step nonzero, got start " +
                         std::to_string(start) + ", stop " + std::to_string(stop) + ", step " + std::to_string(step));
    const double count = std::ceil((stop - start) / step);
    const std::int64_t n = count > 0 ? static_cast<std::int64_t>(count) : 0;
    Array r({n}, dtype);
    detail::dispatch(dtype, "arange", [&]<class T>() {
        T* p = r.data<T>();
        for (std::int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + static_cast<double>(i) * step);
    });
    return Tensor(std::move(r));
}

Tensor linspace(double start, double stop, std::int64_t n, Dtype dtype) {
    if (n < 0) throw ValueError("linspace: number of steps must be non-negative, got " + std::to_string(n));
    Array r({n}, dtype);
    const double step = n > 1 ? (stop - start) / static_cast<double>(n - 1) : 0.0;
    detail::dispatch(dtype, "linspace", [&]<class T>() {
        T* p = r.data<T>();
        for (std::int64_t i = 0; i < n; ++i)
            p[i] = static_cast<T>(i == n - 1 && n > 1 ? stop : start + static_cast<double>(i) * step);
    });
    return Tensor(std::move(r));
}

Tensor eye(std::int64_t n, std::int64_t m, Dtype dtype) {
    if (m < 0) m = n;
    if (n < 0) throw ValueError("eye: n must be non-negative, got " + std::to_string(n));
    Array r = engine::full({n, m}, dtype, 0);
    detail::dispatch(dtype, "eye", [&]<class T>() {
        T* p = r.data<T>();
        for (std::int64_t i = 0; i < std::min(n, m); ++i) p[i * m + i] = T(1);
    });
    return Tensor(std::move(r));
}

void manual_seed(std::uint64_t seed) {
    g_seed = splitmix64(seed);
    g_offset = 0;
}

Tensor rand(const Shape& shape, Dtype dtype) { return uniform(shape, 0.0, 1.0, dtype); }

Tensor uniform(const Shape& shape, double low, double high, Dtype dtype) {
    check_shape(shape, "uniform");
    detail::require_floating(dtype, "uniform");
    if (!(low <= high) || !std::isfinite(low) || !std::isfinite(high))
        throw ValueError("uniform: need finite low <= high, got low " + std::to_string(low) + " and high " +
                         std::to_string(high));
    // The largest value of the dtype below high: rounding low + (high - low) u to float32 could
    // otherwise give high itself, outside [low, high).
    const double top = low == high ? low
                       : dtype == Dtype::f32
                           ? static_cast<double>(std::nextafter(static_cast<float>(high), static_cast<float>(low)))
                           : std::nextafter(high, low);
    return Tensor(generate(shape, dtype, "uniform", 1, kGrainUniform, [=](std::uint64_t s, std::uint64_t c) {
        return std::min(low + (high - low) * unit(s, c), top);
    }));
}

Tensor randn(const Shape& shape, Dtype dtype) { return normal(shape, 0.0, 1.0, dtype); }

Tensor normal(const Shape& shape, double mean, double stddev, Dtype dtype) {
    check_shape(shape, "normal");
    detail::require_floating(dtype, "normal");
    if (!(stddev >= 0) || !std::isfinite(mean) || !std::isfinite(stddev))
        throw ValueError("normal: need a finite mean and stddev >= 0, got mean " + std::to_string(mean) +
                         " and stddev " + std::to_string(stddev));
    // Box-Muller on two independent uniforms per element (counters c and c + 1).
    return Tensor(generate(shape, dtype, "normal", 2, kGrainNormal, [=](std::uint64_t s, std::uint64_t c) {
        const double u1 = 1.0 - unit(s, c), u2 = unit(s, c + 1);  // u1 in (0, 1]: log(u1) is finite
        return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }));
}

Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape) {
    check_shape(shape, "randint");
    if (high <= low)
        throw ValueError("randint: high (" + std::to_string(high) + ") must be greater than low (" +
                         std::to_string(low) + ")");
    const auto range = static_cast<std::uint64_t>(high) - static_cast<std::uint64_t>(low);
    return Tensor(generate(shape, Dtype::i64, "randint", 1, kGrainRandint, [=](std::uint64_t s, std::uint64_t c) {
        return static_cast<std::int64_t>(static_cast<std::uint64_t>(low) + splitmix64(s ^ splitmix64(c)) % range);
    }));
}

Tensor randperm(std::int64_t n) {
    if (n < 0) throw ValueError("randperm: n must be non-negative");
    std::vector<std::int64_t> p(static_cast<std::size_t>(n));
    std::iota(p.begin(), p.end(), 0);
    const std::uint64_t seed = g_seed.load();
    const std::uint64_t base = g_offset.fetch_add(static_cast<std::uint64_t>(n));
    for (std::int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
        const auto j =
            static_cast<std::int64_t>(splitmix64(seed ^ splitmix64(base + i)) % static_cast<std::uint64_t>(i + 1));
        std::swap(p[i], p[j]);
    }
    return tensor_i64(p, {n});
}

}  // namespace xg

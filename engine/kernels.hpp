// Internal kernel templates: dtype dispatch, the TBB parallel policy, SIMD maps and broadcasting
// elementwise loops. Included by .cpp files only (ops/, engine/); pulls in TBB and xsimd.
#pragma once
// clang-format off
#include "x86_intrinsics.hpp"  // first: see there
// clang-format on
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "array.hpp"

namespace xg::detail {

// Grain sizes in float32 elements: at or below them a kernel runs serially, above them it is cut
// into TBB tasks of at most that many elements. Measured on this 2-core machine (AVX-512, float32,
// back-to-back calls, the kernel alone in two halves): two threads start to beat one where a call
// costs about 4 us serially. Serial time, then speed-up on 2 threads (median and best call):
//   add   49152: 2.8 us, 0.74/0.95x    65536: 4.1 us, 1.13/1.28x    98304: 9.4 us, 2.11/2.31x
//   exp   24576: 3.4 us, 0.91/1.05x    32768: 4.5 us, 0.98/1.16x    40960: 5.6 us, 1.14/1.33x
//   tanh  24576: 2.7 us, 0.78/0.98x    32768: 3.7 us, 0.93/1.11x    40960: 4.4 us, 1.01/1.23x
// In float64 the crossovers come at about half as many elements (add 24-32K, tanh 16-20K): see
// scaled_grain. The former transcendental grain of 8192 ran exp at 0.42-0.95x on 2 threads up to
// 16K elements. Through the library (allocation included), float32 exp is serial at 32768 and
// 1.39x at 49152, tanh 1.47x at 49152, add 1.39x at 98304 and 2.28x at 131072.
inline constexpr std::int64_t kGrainCheap = 65536;           // add, mul, copies, fills
inline constexpr std::int64_t kGrainTranscendental = 32768;  // exp, log, tanh, sigmoid ... (xsimd)
// One <cmath> call per element (std::pow: 4 ns in float32, 10 ns in float64 here): 4 us at ~1000.
inline constexpr std::int64_t kGrainLibm = 1024;

// A large GEMM is cut into fixed tiles of C, each one single-threaded BLAS call on a TBB task. The
// tiling depends on the problem size only, so results do not depend on the thread count (and
// xg::linear's x W^T comes out bit-identical to engine::matmul's).
// Measured here (float32, 1 -> 2 threads): 128^3 0.041 -> 0.024 ms with 64-row tiles (one call
// before: 1.00x), 64x256x256 1.49x, 256^3 2.01x, 512^3 2.04x with 128-row tiles; 64-row tiles on
// the big ones cost 3-5% at one thread, hence two tile heights. From 1024 rows on, two tiles:
// each tile repacks B, and 1024^3 ran at 147 / 284 GFLOPS (1 / 2 threads) in 128-row tiles,
// 189 / 328 in 512-row tiles, against 200 for one call (OpenBLAS serial, SkylakeX kernels).
inline constexpr std::int64_t kGemmSplitFlops = std::int64_t(1) << 19;  // m*n*k below this (~10 us): one call
inline constexpr std::int64_t kGemmTaskFlops = std::int64_t(1) << 18;   // fewer flops per task: tasks are grouped

/// The tiles of an m x n x k GEMM: tile sizes, tile counts and the parallel_for grain (in tiles).
struct GemmTiling {
    std::int64_t tile_m, tile_n, tiles_m, tiles_n, grain;
    std::int64_t tiles() const { return tiles_m * tiles_n; }
};

// Rows (or columns) per tile along a dimension of size d: half of d (rounded up to 64) when d holds
// 8 big tiles, big (128 rows, 256 columns) when it holds two, else big / 2 when it holds two of
// those, else the whole dimension. (Going down to 32-row tiles made 96^3 only 1.07x and cost 13% at
// one thread on 64x256x256.)
inline std::int64_t gemm_tile(std::int64_t d, std::int64_t big) {
    if (d >= 8 * big) return (d / 2 + 63) / 64 * 64;
    if (d >= 2 * big) return big;
    if (d >= big) return big / 2;
    return d;
}

/// The fixed tiling of an m x n x k GEMM (row tiles, or column tiles for short, wide products).
inline GemmTiling gemm_tiling(std::int64_t m, std::int64_t n, std::int64_t k) {
    const bool split = m * n * k >= kGemmSplitFlops;
    GemmTiling t{};
    // Up to 128 rows (a batch of 128) with 256 columns or more, column tiles: each task then packs
    // and reads half of B (the weights of x W^T) instead of all of it. W1 step (784-512-256-10,
    // batch 128), row -> column tiles, interleaved, median us: 2 threads 1148-1394 -> 1039-1320
    // (the optimizer step, which next writes those weights, 177-186 -> 78-85 in the bad state),
    // 1 thread 1919-2108 -> 1837-1897.
    const bool short_wide = m <= 128 && n >= 256;
    t.tile_m = split && !short_wide ? gemm_tile(m, 128) : m;
    t.tile_n = split && t.tile_m == m ? gemm_tile(n, 256) : n;
    t.tiles_m = (m + t.tile_m - 1) / t.tile_m;
    t.tiles_n = (n + t.tile_n - 1) / t.tile_n;
    const std::int64_t task_flops = std::max<std::int64_t>(1, t.tile_m * t.tile_n * std::max<std::int64_t>(k, 1));
    t.grain = std::max<std::int64_t>(1, kGemmTaskFlops / task_flops);
    return t;
}

/// A grain given in float32 elements, for elements of type T: an 8-byte element costs about twice
/// as much (half the SIMD lanes, twice the bytes), so the crossover comes at half as many.
template <class T>
constexpr std::int64_t scaled_grain(std::int64_t grain_f32) {
    return std::max<std::int64_t>(1, grain_f32 * 4 / static_cast<std::int64_t>(sizeof(T)));
}

/// The order of sum_contiguous, resumed at x[i] with its two accumulators as they stand (i - start
/// a multiple of 2 batches): for kernels that sum their output while writing it (simd_run, relu),
/// which accumulate the first part themselves and must give the same result bit for bit.
template <class T, class B>
T sum_contiguous_from(const T* x, std::int64_t i, std::int64_t n, B acc0, B acc1) {
    constexpr std::int64_t W = B::size;
    for (; i + 2 * W <= n; i += 2 * W) {
        acc0 += B::load_unaligned(x + i);
        acc1 += B::load_unaligned(x + i + W);
    }
    T s = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) s += x[i];
    return s;
}

/// Sum of n contiguous values with SIMD accumulators in a fixed order (deterministic).
template <class T>
T sum_contiguous(const T* x, std::int64_t n) {
    if constexpr (std::is_floating_point_v<T>) {
        using B = xsimd::batch<T>;
        return sum_contiguous_from(x, 0, n, B(T(0)), B(T(0)));
    } else {
        T s = 0;
        for (std::int64_t i = 0; i < n; ++i) s += x[i];
        return s;
    }
}

/// A full sum of a long array is taken in fixed chunks of this many elements, each by
/// sum_contiguous, the chunk sums then added in order (sum_of_chunk_sums): the result does not
/// depend on the thread count, and a kernel that writes an array chunk by chunk can compute the
/// very same sum on the way (Array::remember_sum).
inline constexpr std::int64_t kReduceChunk = 16384;

/// The full sum from the sums of its kReduceChunk chunks, in order (one chunk: its sum as it is).
template <class T>
T sum_of_chunk_sums(const T* chunk_sums, std::int64_t chunks) {
    if (chunks == 1) return chunk_sums[0];
    T s = 0;
    for (std::int64_t c = 0; c < chunks; ++c) s += chunk_sums[c];
    return s;
}

/// Makes BLAS single-threaded (once): GEMMs are split across TBB tasks instead.
void ensure_blas_single_threaded();

/// Runs f(begin, end) over [0, n) in chunks of at least `grain`, in parallel when n > grain.
template <class F>
void parallel_for(std::int64_t n, std::int64_t grain, F&& f) {
    if (n <= 0) return;
    if (n <= grain) {
        f(std::int64_t(0), n);
        return;
    }
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, n, grain),
        [&](const tbb::blocked_range<std::int64_t>& r) { f(r.begin(), r.end()); }, tbb::simple_partitioner());
}

/// Runs chunk(b, e), which returns the sum of elements [b, e) by sum_contiguous's order (reading
/// them, or computing and writing them), over the kReduceChunk chunks of [0, n) in parallel
/// (`grain` elements or more per task), and returns the full sum: reduce_sum's, bit for bit.
template <class T, class F>
T for_each_sum_chunk(std::int64_t n, std::int64_t grain, F&& chunk) {
    if (n <= kReduceChunk) return chunk(std::int64_t(0), n);  // one chunk: no buffer of chunk sums
    const std::int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
    std::vector<T> chunk_sums(static_cast<std::size_t>(chunks));
    parallel_for(chunks, std::max<std::int64_t>(1, grain / kReduceChunk), [&](std::int64_t cb, std::int64_t ce) {
        for (std::int64_t c = cb; c < ce; ++c)
            chunk_sums[c] = chunk(c * kReduceChunk, std::min(n, (c + 1) * kReduceChunk));
    });
    return sum_of_chunk_sums(chunk_sums.data(), chunks);
}

/// Calls f.template operator()<T>() with T the C++ type of dtype d.
template <class F>
decltype(auto) dispatch(Dtype d, const char* /*op*/, F&& f) {
    switch (d) {
        case Dtype::f32:
            return f.template operator()<float>();
        case Dtype::f64:
            return f.template operator()<double>();
        default:
            return f.template operator()<std::int64_t>();
    }
}

/// Throws DtypeError naming op unless d is a floating dtype.
inline void require_floating(Dtype d, const char* op) {
    if (!is_floating(d))
        throw DtypeError(std::string(op) + ": expected a floating-point tensor (float32 or float64), got " +
                         dtype_name(d));
}

/// Throws DtypeError naming op and the array's shape unless it is floating.
inline void require_floating(const Array& a, const char* op) {
    if (!is_floating(a.dtype()))
        throw DtypeError(std::string(op) + ": expected a floating-point tensor (float32 or float64), got an " +
                         dtype_name(a.dtype()) + " tensor of shape " + shape_str(a.shape()));
}

/// Like dispatch, for ops defined on floating dtypes only.
template <class F>
decltype(auto) dispatch_floating(Dtype d, const char* op, F&& f) {
    require_floating(d, op);
    if (d == Dtype::f32) return f.template operator()<float>();
    return f.template operator()<double>();
}

/// f(v) on a whole batch, or g lane by lane when a lane is outside [lo, hi] (or NaN). For xsimd
/// functions whose range is narrower than <cmath>'s: xsimd::exp gives 0 below -87.3 in float32
/// where std::exp still has subnormals, and inf above 88.38 where float32 still holds e^88.7.
template <class B, class F, class G>
B simd_or_scalar(const B& v, typename B::value_type lo, typename B::value_type hi, F f, G g) {
    if (xsimd::all((v >= B(lo)) & (v <= B(hi)))) return f(v);
    using T = typename B::value_type;
    alignas(64) T buf[B::size];
    v.store_aligned(buf);
    for (std::size_t k = 0; k < B::size; ++k) buf[k] = g(buf[k]);
    return B::load_aligned(buf);
}

/// y[i] = f(x[i]) with f applied to xsimd batches (the tail is padded into one batch).
template <class T, class F>
void simd_map(const T* x, T* y, std::int64_t n, F& f) {
    using B = xsimd::batch<T>;
    constexpr std::int64_t W = B::size;
    std::int64_t i = 0;
    for (; i + W <= n; i += W) f(B::load_unaligned(x + i)).store_unaligned(y + i);
    if (i < n) {
        alignas(64) T buf[W] = {};
        for (std::int64_t k = 0; k < n - i; ++k) buf[k] = x[i + k];
        f(B::load_aligned(buf)).store_aligned(buf);
        for (std::int64_t k = 0; k < n - i; ++k) y[i + k] = buf[k];
    }
}

/// y[i] = f(a[i], b[i]) on xsimd batches.
template <class T, class F>
void simd_map2(const T* a, const T* b, T* y, std::int64_t n, F& f) {
    using B = xsimd::batch<T>;
    constexpr std::int64_t W = B::size;
    std::int64_t i = 0;
    for (; i + W <= n; i += W) f(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(y + i);
    if (i < n) {
        alignas(64) T ba[W] = {}, bb[W] = {};
        for (std::int64_t k = 0; k < n - i; ++k) ba[k] = a[i + k], bb[k] = b[i + k];
        f(B::load_aligned(ba), B::load_aligned(bb)).store_aligned(ba);
        for (std::int64_t k = 0; k < n - i; ++k) y[i + k] = ba[k];
    }
}

/// A new array of x's shape with y = f(x) elementwise, f written for xsimd batches; floating only.
template <class F>
Array unary_simd(const Array& x, const char* op, F f, std::int64_t grain = kGrainTranscendental) {
    require_floating(x, op);
    return dispatch_floating(x.dtype(), op, [&]<class T>() {
        Array y(x.shape(), x.dtype());
        const T* px = x.data<T>();
        T* py = y.data<T>();
        parallel_for(x.numel(), scaled_grain<T>(grain),
                     [&](std::int64_t b, std::int64_t e) { simd_map(px + b, py + b, e - b, f); });
        return y;
    });
}

/// A new array with y = f(a, b) for same-shape floating arrays, f written for xsimd batches.
template <class F>
Array binary_simd_same_shape(const Array& a, const Array& b, const char* op, F f,
                             std::int64_t grain = kGrainTranscendental) {
    return dispatch_floating(a.dtype(), op, [&]<class T>() {
        Array y(a.shape(), a.dtype());
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* py = y.data<T>();
        parallel_for(a.numel(), scaled_grain<T>(grain),
                     [&](std::int64_t s, std::int64_t e) { simd_map2(pa + s, pb + s, py + s, e - s, f); });
        return y;
    });
}

/// Iterates the rows of an N-ary broadcast: for each run of `inner` output elements calls
/// body(out_offset, offsets, inner_strides, inner) where offsets/inner_strides index each input.
template <std::size_t N, class Body>
void broadcast_rows(const Shape& out, const std::array<const Shape*, N>& in, std::int64_t grain, Body&& body) {
    const std::size_t nd = out.size();
    const std::int64_t total = shape_numel(out);
    if (total == 0) return;
    if (nd == 0) {  // every operand is 0-d: one element
        body(std::int64_t(0), std::array<std::int64_t, N>{}, std::array<std::int64_t, N>{}, std::int64_t(1));
        return;
    }
    std::array<Shape, N> strides;
    for (std::size_t k = 0; k < N; ++k) {
        const Shape& s = *in[k];
        strides[k].assign(nd, 0);
        std::int64_t acc = 1;
        for (std::size_t i = s.size(); i-- > 0;) {
            const std::size_t o = i + (nd - s.size());
            strides[k][o] = s[i] == 1 ? 0 : acc;
            acc *= s[i];
        }
    }
    const std::int64_t inner = nd ? out[nd - 1] : 1;
    std::array<std::int64_t, N> inner_strides{};
    for (std::size_t k = 0; k < N; ++k) inner_strides[k] = nd ? strides[k][nd - 1] : 0;
    const std::int64_t rows = total / inner;
    const std::int64_t row_grain = std::max<std::int64_t>(1, grain / std::max<std::int64_t>(inner, 1));
    parallel_for(rows, row_grain, [&](std::int64_t rb, std::int64_t re) {
        for (std::int64_t r = rb; r < re; ++r) {
            std::array<std::int64_t, N> off{};
            std::int64_t rem = r;
            for (std::size_t d = nd - 1; d-- > 0;) {
                const std::int64_t idx = rem % out[d];
                rem /= out[d];
                for (std::size_t k = 0; k < N; ++k) off[k] += idx * strides[k][d];
            }
            body(r * inner, off, inner_strides, inner);
        }
    });
}

/// out = f(a, b) elementwise with NumPy broadcasting; a and b must already share the dtype T.
/// f is called on scalars of type T and returns R.
template <class T, class R, class F>
void binary_broadcast(const Array& a, const Array& b, Array& out, F f, std::int64_t grain = kGrainCheap) {
    grain = scaled_grain<T>(grain);
    const std::int64_t n = out.numel();
    // A lazily filled constant operand (Array::filled) is read as one value when the other
    // operand is full-size or one value too; otherwise the general path materialises it.
    std::int64_t na = a.numel(), nb = b.numel();
    bool ua = n > 1 && na == n && a.is_uniform(), ub = n > 1 && nb == n && b.is_uniform();
    if (ua && !(ub || nb == n || nb == 1)) ua = false;
    if (ub && !(ua || na == n || na == 1)) ub = false;
    const T* pa = ua ? static_cast<const T*>(a.uniform_value()) : a.data<T>();
    const T* pb = ub ? static_cast<const T*>(b.uniform_value()) : b.data<T>();
    if (ua) na = 1;
    if (ub) nb = 1;
    R* po = out.data<R>();
    if (na == 1 && nb == 1 && n > 1) {
        const R v = f(pa[0], pb[0]);
        parallel_for(n, grain, [&](std::int64_t s, std::int64_t e) { std::fill(po + s, po + e, v); });
    } else if (na == n && nb == n) {
        parallel_for(n, grain, [&](std::int64_t s, std::int64_t e) {
            for (std::int64_t i = s; i < e; ++i) po[i] = f(pa[i], pb[i]);
        });
    } else if (nb == 1 && na == n) {
        const T vb = pb[0];
        parallel_for(n, grain, [&](std::int64_t s, std::int64_t e) {
            for (std::int64_t i = s; i < e; ++i) po[i] = f(pa[i], vb);
        });
    } else if (na == 1 && nb == n) {
        const T va = pa[0];
        parallel_for(n, grain, [&](std::int64_t s, std::int64_t e) {
            for (std::int64_t i = s; i < e; ++i) po[i] = f(va, pb[i]);
        });
    } else {
        broadcast_rows<2>(out.shape(), {&a.shape(), &b.shape()}, grain,
                          [&](std::int64_t o, const std::array<std::int64_t, 2>& off,
                              const std::array<std::int64_t, 2>& st, std::int64_t inner) {
                              const T* xa = pa + off[0];
                              const T* xb = pb + off[1];
                              R* y = po + o;
                              if (st[0] == 1 && st[1] == 1)
                                  for (std::int64_t i = 0; i < inner; ++i) y[i] = f(xa[i], xb[i]);
                              else if (st[0] == 1 && st[1] == 0)
                                  for (std::int64_t i = 0; i < inner; ++i) y[i] = f(xa[i], xb[0]);
                              else if (st[0] == 0 && st[1] == 1)
                                  for (std::int64_t i = 0; i < inner; ++i) y[i] = f(xa[0], xb[i]);
                              else
                                  for (std::int64_t i = 0; i < inner; ++i) y[i] = f(xa[i * st[0]], xb[i * st[1]]);
                          });
    }
}

/// out = f(a, b, c) elementwise with broadcasting over three inputs of types A, B, C.
template <class A, class B, class C, class R, class F>
void ternary_broadcast(const Array& a, const Array& b, const Array& c, Array& out, F f,
                       std::int64_t grain = kGrainCheap) {
    grain = scaled_grain<R>(grain);
    const A* pa = a.data<A>();
    const B* pb = b.data<B>();
    const C* pc = c.data<C>();
    R* po = out.data<R>();
    broadcast_rows<3>(out.shape(), {&a.shape(), &b.shape(), &c.shape()}, grain,
                      [&](std::int64_t o, const std::array<std::int64_t, 3>& off, const std::array<std::int64_t, 3>& st,
                          std::int64_t inner) {
                          for (std::int64_t i = 0; i < inner; ++i)
                              po[o + i] = f(pa[off[0] + i * st[0]], pb[off[1] + i * st[1]], pc[off[2] + i * st[2]]);
                      });
}

}  // namespace xg::detail

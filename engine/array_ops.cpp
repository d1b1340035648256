#include "array_ops.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels.hpp"

namespace xg::engine {

using detail::dispatch;
using detail::kGrainCheap;
using detail::kReduceChunk;
using detail::parallel_for;
using detail::sum_contiguous;

Array full(const Shape& shape, Dtype dtype, double value) {
    Array r(shape, dtype);
    dispatch(dtype, "full", [&]<class T>() {
        T* p = r.data<T>();
        const T v = static_cast<T>(value);
        parallel_for(r.numel(), kGrainCheap, [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, v); });
    });
    return r;
}

Array permute(const Array& a, const std::vector<int>& perm) {
    const std::size_t nd = a.ndim();
    Shape out_shape(nd);
    for (std::size_t i = 0; i < nd; ++i) out_shape[i] = a.shape()[perm[i]];
    bool identity = true;
    for (std::size_t i = 0; i < nd; ++i) identity &= perm[i] == static_cast<int>(i);
    if (identity) return a.clone();
    Array r(out_shape, a.dtype());
    const Shape in_strides = contiguous_strides(a.shape());
    Shape src_strides(nd);  // stride in a of each output axis
    for (std::size_t i = 0; i < nd; ++i) src_strides[i] = in_strides[perm[i]];
    dispatch(a.dtype(), "permute", [&]<class T>() {
        const T* src = a.data<T>();
        T* dst = r.data<T>();
        const std::int64_t inner = out_shape[nd - 1];
        const std::int64_t inner_stride = src_strides[nd - 1];
        const std::int64_t rows = r.numel() / std::max<std::int64_t>(inner, 1);
        if (r.numel() == 0) return;
        parallel_for(rows, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(inner, 1)),
                     [&](std::int64_t rb, std::int64_t re) {
                         for (std::int64_t row = rb; row < re; ++row) {
                             std::int64_t rem = row, off = 0;
                             for (std::size_t d = nd - 1; d-- > 0;) {
                                 off += (rem % out_shape[d]) * src_strides[d];
                                 rem /= out_shape[d];
                             }
                             T* y = dst + row * inner;
                             for (std::int64_t i = 0; i < inner; ++i) y[i] = src[off + i * inner_stride];
                         }
                     });
    });
    return r;
}

Array broadcast_to(const Array& a, const Shape& shape, const char* op) {
    const Shape b = broadcast_shape(a.shape(), shape, op);
    if (b != shape)
        throw ShapeError(std::string(op) + ": cannot broadcast shape " + shape_str(a.shape()) + " to " +
                         shape_str(shape));
    if (a.shape() == shape) return a;
    if (a.numel() == 1 && is_floating(a.dtype()))  // the gradient of a full reduction: a lazily filled constant
        return detail::dispatch_floating(a.dtype(), op, [&]<class T>() {
            return Array::filled(shape, a.dtype(), static_cast<double>(a.data<T>()[0]));
        });
    Array r(shape, a.dtype());
    dispatch(a.dtype(), op, [&]<class T>() {
        const T* src = a.data<T>();
        T* dst = r.data<T>();
        detail::broadcast_rows<1>(shape, {&a.shape()}, kGrainCheap,
                                  [&](std::int64_t o, const std::array<std::int64_t, 1>& off,
                                      const std::array<std::int64_t, 1>& st, std::int64_t inner) {
                                      for (std::int64_t i = 0; i < inner; ++i) dst[o + i] = src[off[0] + i * st[0]];
                                  });
    });
    return r;
}

namespace {

Shape reduced_shape(const Shape& s, const std::vector<int>& axes, bool keepdim) {
    Shape r;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool red = std::find(axes.begin(), axes.end(), static_cast<int>(i)) != axes.end();
        if (!red)
            r.push_back(s[i]);
        else if (keepdim)
            r.push_back(1);
    }
    return r;
}

// Moves the reduced axes last (a copy unless they already are) and returns (rows, row length).
Array reduced_axes_last(const Array& a, const std::vector<int>& axes, std::int64_t& rows, std::int64_t& len) {
    const std::size_t nd = a.ndim();
    std::vector<int> perm;
    for (std::size_t i = 0; i < nd; ++i)
        if (std::find(axes.begin(), axes.end(), static_cast<int>(i)) == axes.end()) perm.push_back(static_cast<int>(i));
    for (int ax : axes) perm.push_back(ax);
    len = 1;
    for (int ax : axes) len *= a.shape()[ax];
    rows = len ? a.numel() / len : shape_numel(reduced_shape(a.shape(), axes, false));
    bool trailing = true;
    for (std::size_t i = 0; i < nd; ++i) trailing &= perm[i] == static_cast<int>(i);
    return trailing ? a : permute(a, perm);
}

// A full sum in fixed chunks (see kReduceChunk): the result does not depend on the thread count.
template <class T>
T sum_long(const T* x, std::int64_t n) {
    return detail::for_each_sum_chunk<T>(n, 4 * kReduceChunk,
                                         [x](std::int64_t b, std::int64_t e) { return sum_contiguous(x + b, e - b); });
}

}  // namespace

Array reduce_sum(const Array& a, const std::vector<int>& axes, bool keepdim) {
    const Shape out_shape = reduced_shape(a.shape(), axes, keepdim);
    Array r(out_shape, a.dtype());
    const std::size_t nd = a.ndim();
    // Leading axes reduced (bias gradients): accumulate rows into the output, no permute copy.
    bool leading = !axes.empty() && axes.size() < nd;
    for (std::size_t i = 0; i < axes.size() && leading; ++i) leading = axes[i] == static_cast<int>(i);
    dispatch(a.dtype(), "sum", [&]<class T>() {
        const T* x = a.data<T>();
        T* y = r.data<T>();
        if (leading) {
            std::int64_t outer = 1;
            for (int ax : axes) outer *= a.shape()[ax];
            const std::int64_t cols = r.numel();
            parallel_for(cols, std::max<std::int64_t>(64, kGrainCheap / std::max<std::int64_t>(outer, 1)),
                         [&](std::int64_t cb, std::int64_t ce) {
                             std::fill(y + cb, y + ce, T(0));
                             for (std::int64_t i = 0; i < outer; ++i) {
                                 const T* row = x + i * cols;
                                 for (std::int64_t j = cb; j < ce; ++j) y[j] += row[j];
                             }
                         });
            return;
        }
        std::int64_t rows, len;
        const Array src = reduced_axes_last(a, axes, rows, len);
        const T* s = src.data<T>();
        if (rows == 1) {
            double known;  // computed by the kernel that wrote the elements, in this very order
            y[0] = src.known_sum(known) ? static_cast<T>(known) : sum_long(s, len);
            return;
        }
        parallel_for(rows, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(len, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t i = b; i < e; ++i) y[i] = sum_contiguous(s + i * len, len);
                     });
    });
    return r;
}

Array reduce_prod(const Array& a, const std::vector<int>& axes, bool keepdim) {
    Array r(reduced_shape(a.shape(), axes, keepdim), a.dtype());
    std::int64_t rows, len;
    const Array src = reduced_axes_last(a, axes, rows, len);
    dispatch(a.dtype(), "prod", [&]<class T>() {
        const T* s = src.data<T>();
        T* y = r.data<T>();
        parallel_for(rows, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(len, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t i = b; i < e; ++i) {
                             T p = 1;
                             for (std::int64_t k = 0; k < len; ++k) p *= s[i * len + k];
                             y[i] = p;
                         }
                     });
    });
    return r;
}

Array reduce_extreme(const Array& a, const std::vector<int>& axes, bool keepdim, bool is_max) {
    Array r(reduced_shape(a.shape(), axes, keepdim), a.dtype());
    std::int64_t rows, len;
    const Array src = reduced_axes_last(a, axes, rows, len);
    dispatch(a.dtype(), is_max ? "max" : "min", [&]<class T>() {
        const T* s = src.data<T>();
        T* y = r.data<T>();
        parallel_for(rows, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(len, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t i = b; i < e; ++i) {
                             const T* x = s + i * len;
                             T m = x[0];
                             for (std::int64_t k = 1; k < len; ++k) {
                                 const T v = x[k];
                                 if constexpr (std::is_floating_point_v<T>)
                                     if (std::isnan(v) || std::isnan(m)) {
                                         m = std::numeric_limits<T>::quiet_NaN();
                                         break;
                                     }
                                 if (is_max ? v > m : v < m) m = v;
                             }
                             y[i] = m;
                         }
                     });
    });
    return r;
}

Array reduce_arg_extreme(const Array& a, int axis, bool keepdim, bool is_max) {
    std::vector<int> axes;
    Array src_a = a;
    if (axis < 0) {
        src_a = a.reshape({a.numel()});
        axes = {0};
    } else {
        axes = {axis};
    }
    Shape out_shape = axis < 0 ? (keepdim ? Shape(a.ndim(), 1) : Shape{}) : reduced_shape(a.shape(), axes, keepdim);
    Array r(out_shape, Dtype::i64);
    std::int64_t rows, len;
    const Array src = reduced_axes_last(src_a, axes, rows, len);
    dispatch(a.dtype(), is_max ? "argmax" : "argmin", [&]<class T>() {
        const T* s = src.data<T>();
        std::int64_t* y = r.data<std::int64_t>();
        parallel_for(rows, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(len, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t i = b; i < e; ++i) {
                             const T* x = s + i * len;
                             std::int64_t best = 0;
                             for (std::int64_t k = 1; k < len; ++k) {
                                 if constexpr (std::is_floating_point_v<T>)
                                     if (std::isnan(x[best])) break;
                                 if constexpr (std::is_floating_point_v<T>)
                                     if (std::isnan(x[k])) {
                                         best = k;
                                         break;
                                     }
                                 if (is_max ? x[k] > x[best] : x[k] < x[best]) best = k;
                             }
                             y[i] = best;
                         }
                     });
    });
    return r;
}

Array sum_to(const Array& a, const Shape& shape) {
    if (a.shape() == shape) return a;
    const std::size_t nd = a.ndim();
    const std::size_t lead = nd - shape.size();
    std::vector<int> axes;
    for (std::size_t i = 0; i < nd; ++i)
        if (i < lead || (shape[i - lead] == 1 && a.shape()[i] != 1)) axes.push_back(static_cast<int>(i));
    return reduce_sum(a, axes, false).reshape(shape);
}

template <class T>
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a, std::int64_t lda, const T* b,
          std::int64_t ldb, T* c, std::int64_t ldc, bool accumulate) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
        return;
    }
    const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
    const auto LDA = static_cast<blasint>(lda), LDB = static_cast<blasint>(ldb), LDC = static_cast<blasint>(ldc);
    if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, 1.0f, a, LDA, b, LDB, accumulate ? 1.0f : 0.0f, c, LDC);
    else
        cblas_dgemm(CblasRowMajor, TA, TB, M, N, K, 1.0, a, LDA, b, LDB, accumulate ? 1.0 : 0.0, c, LDC);
}
template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                          const float*, std::int64_t, float*, std::int64_t, bool);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, const double*, std::int64_t,
                           const double*, std::int64_t, double*, std::int64_t, bool);

Array matmul(const Array& a, const Array& b, bool ta, bool tb) {
    if (a.ndim() < 2 || b.ndim() < 2)
        throw ShapeError("matmul: kernel expects at least 2-d operands, got " + shape_str(a.shape()) + " and " +
                         shape_str(b.shape()));
    const std::int64_t m = ta ? a.size(-1) : a.size(-2), ka = ta ? a.size(-2) : a.size(-1);
    const std::int64_t kb = tb ? b.size(-1) : b.size(-2), n = tb ? b.size(-2) : b.size(-1);
    auto shapes = [&] {
        std::string r =
            "shapes " + shape_str(a.shape()) + (ta ? "^T" : "") + " and " + shape_str(b.shape()) + (tb ? "^T" : "");
        return r;
    };
    if (ka != kb)
        throw ShapeError("matmul: " + shapes() + " are not compatible (" + std::to_string(ka) +
                         " != " + std::to_string(kb) + ")");
    if (a.dtype() != b.dtype())
        throw DtypeError(std::string("matmul: dtypes differ: ") + dtype_name(a.dtype()) + " and " +
                         dtype_name(b.dtype()));
    if (!is_floating(a.dtype()))
        throw DtypeError(std::string("matmul: expected floating-point tensors (float32 or float64), got ") +
                         dtype_name(a.dtype()) + " tensors of " + shapes());
    const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
    Shape batch;
    try {
        batch = broadcast_shape(batch_a, batch_b, "matmul");
    } catch (const ShapeError&) {
        throw ShapeError("matmul: batch dimensions of " + shapes() + " cannot be broadcast (" + shape_str(batch_a) +
                         " vs " + shape_str(batch_b) + ")");
    }
    Shape out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    Array c(out_shape, a.dtype());
    const std::int64_t nbatch = shape_numel(batch);
    if (c.numel() == 0) return c;
    detail::ensure_blas_single_threaded();
    // Offsets of each batch matrix in a and b (broadcast batch dims repeat a matrix).
    boost::container::small_vector<std::int64_t, 1> off_a(static_cast<std::size_t>(nbatch)),
        off_b(static_cast<std::size_t>(nbatch));
    {
        Shape sa(batch.size(), 0), sb(batch.size(), 0);
        auto fill_strides = [&](const Shape& bs, Shape& st, std::int64_t mat) {
            std::int64_t acc = mat;
            for (std::size_t i = bs.size(); i-- > 0;) {
                const std::size_t o = i + batch.size() - bs.size();
                st[o] = bs[i] == 1 ? 0 : acc;
                acc *= bs[i];
            }
        };
        fill_strides(batch_a, sa, a.size(-1) * a.size(-2));
        fill_strides(batch_b, sb, b.size(-1) * b.size(-2));
        for (std::int64_t i = 0; i < nbatch; ++i) {
            std::int64_t rem = i;
            for (std::size_t d = batch.size(); d-- > 0;) {
                const std::int64_t idx = rem % batch[d];
                rem /= batch[d];
                off_a[i] += idx * sa[d];
                off_b[i] += idx * sb[d];
            }
        }
    }
    const std::int64_t lda = a.size(-1), ldb = b.size(-1);
    const std::int64_t k = ka;
    const detail::GemmTiling tiling = detail::gemm_tiling(m, n, k);
    const std::int64_t tile_m = tiling.tile_m, tile_n = tiling.tile_n, tiles_n = tiling.tiles_n;
    const std::int64_t per_matrix = tiling.tiles(), tasks = nbatch * per_matrix;
    detail::dispatch_floating(a.dtype(), "matmul", [&]<class T>() {
        const T* pa = a.data<T>();
        const T* pb = b.data<T>();
        T* pc = c.data<T>();
        parallel_for(tasks, tiling.grain, [&](std::int64_t t0, std::int64_t t1) {
            for (std::int64_t t = t0; t < t1; ++t) {
                const std::int64_t bi = t / per_matrix, tile = t % per_matrix;
                const std::int64_t r0 = (tile / tiles_n) * tile_m, c0 = (tile % tiles_n) * tile_n;
                const std::int64_t rows = std::min(tile_m, m - r0), cols = std::min(tile_n, n - c0);
                // Row r0 of op(A): row r0 of A, or column r0 of A^T storage; likewise column c0 of op(B).
                const T* A = pa + off_a[bi] + (ta ? r0 : r0 * lda);
                const T* B = pb + off_b[bi] + (tb ? c0 * ldb : c0);
                gemm<T>(ta, tb, rows, cols, k, A, lda, B, ldb, pc + bi * m * n + r0 * n + c0, n);
            }
        });
    });
    return c;
}

Array slice(const Array& a, int axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
    Shape out_shape = a.shape();
    const std::int64_t len = stop > start ? (stop - start + step - 1) / step : 0;
    out_shape[axis] = len;
    Array r(out_shape, a.dtype());
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= a.shape()[i];
    for (std::size_t i = axis + 1; i < a.ndim(); ++i) inner *= a.shape()[i];
    const std::int64_t dim = a.shape()[axis];
    const std::size_t es = dtype_size(a.dtype());
    const char* src = static_cast<const char*>(a.raw());
    char* dst = static_cast<char*>(r.raw());
    parallel_for(outer * len, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(inner, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t t = b; t < e; ++t) {
                         const std::int64_t o = t / len, j = t % len;
                         std::memcpy(dst + t * inner * es, src + ((o * dim + start + j * step) * inner) * es,
                                     inner * es);
                     }
                 });
    return r;
}

Array slice_scatter(const Array& src, const Shape& shape, int axis, std::int64_t start, std::int64_t step) {
    Array r = full(shape, src.dtype(), 0);
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= shape[i];
    for (std::size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
    const std::int64_t dim = shape[axis], len = src.shape()[axis];
    const std::size_t es = dtype_size(src.dtype());
    const char* s = static_cast<const char*>(src.raw());
    char* d = static_cast<char*>(r.raw());
    parallel_for(outer * len, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(inner, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t t = b; t < e; ++t) {
                         const std::int64_t o = t / len, j = t % len;
                         std::memcpy(d + ((o * dim + start + j * step) * inner) * es, s + t * inner * es, inner * es);
                     }
                 });
    return r;
}

Array concat(const std::vector<Array>& parts, int axis) {
    Shape out_shape = parts.at(0).shape();
    std::int64_t total = 0;
    for (const auto& p : parts) total += p.shape()[axis];
    out_shape[axis] = total;
    Array r(out_shape, parts[0].dtype());
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= out_shape[i];
    for (std::size_t i = axis + 1; i < out_shape.size(); ++i) inner *= out_shape[i];
    const std::size_t es = dtype_size(r.dtype());
    char* d = static_cast<char*>(r.raw());
    std::int64_t offset = 0;
    for (const auto& p : parts) {
        const std::int64_t len = p.shape()[axis];
        const char* s = static_cast<const char*>(p.raw());
        const std::int64_t row = len * inner;  // elements copied per outer index
        parallel_for(outer, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(row, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t o = b; o < e; ++o)
                             std::memcpy(d + ((o * total + offset) * inner) * es, s + o * row * es, row * es);
                     });
        offset += len;
    }
    return r;
}

namespace {
void check_index(std::int64_t v, std::int64_t dim, const char* op) {
    if (v < -dim || v >= dim)
        throw IndexError(std::string(op) + ": index " + std::to_string(v) +
                         " is out of range for a dimension of size " + std::to_string(dim));
}
}  // namespace

Array index_select(const Array& a, int axis, const Array& index) {
    const std::int64_t* idx = index.data<std::int64_t>();
    const std::int64_t n = index.numel(), dim = a.shape()[axis];
    for (std::int64_t i = 0; i < n; ++i) check_index(idx[i], dim, "index_select");
    Shape out_shape = a.shape();
    out_shape[axis] = n;
    Array r(out_shape, a.dtype());
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= a.shape()[i];
    for (std::size_t i = axis + 1; i < a.ndim(); ++i) inner *= a.shape()[i];
    const std::size_t es = dtype_size(a.dtype());
    const char* s = static_cast<const char*>(a.raw());
    char* d = static_cast<char*>(r.raw());
    parallel_for(outer * n, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(inner, 1)),
                 [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t t = b; t < e; ++t) {
                         const std::int64_t o = t / n, j = t % n;
                         const std::int64_t k = idx[j] < 0 ? idx[j] + dim : idx[j];
                         std::memcpy(d + t * inner * es, s + (o * dim + k) * inner * es, inner * es);
                     }
                 });
    return r;
}

Array index_add(const Array& src, const Shape& shape, int axis, const Array& index) {
    Array r = full(shape, src.dtype(), 0);
    const std::int64_t* idx = index.data<std::int64_t>();
    const std::int64_t n = index.numel(), dim = shape[axis];
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= shape[i];
    for (std::size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
    dispatch(src.dtype(), "index_select backward", [&]<class T>() {
        const T* s = src.data<T>();
        T* d = r.data<T>();
        // Parallel over outer slices only: repeated indices accumulate in a fixed order.
        parallel_for(outer, std::max<std::int64_t>(1, kGrainCheap / std::max<std::int64_t>(n * inner, 1)),
                     [&](std::int64_t b, std::int64_t e) {
                         for (std::int64_t o = b; o < e; ++o)
                             for (std::int64_t j = 0; j < n; ++j) {
                                 const std::int64_t k = idx[j] < 0 ? idx[j] + dim : idx[j];
                                 T* y = d + (o * dim + k) * inner;
                                 const T* x = s + (o * n + j) * inner;
                                 for (std::int64_t i = 0; i < inner; ++i) y[i] += x[i];
                             }
                     });
    });
    return r;
}

Array gather(const Array& a, int axis, const Array& index) {
    const std::int64_t* idx = index.data<std::int64_t>();
    const Shape& is = index.shape();
    Array r(is, a.dtype());
    std::int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= is[i];
    for (std::size_t i = axis + 1; i < is.size(); ++i) inner *= is[i];
    const std::int64_t n = is[axis], dim = a.shape()[axis];
    std::int64_t a_inner = 1;
    for (std::size_t i = axis + 1; i < a.ndim(); ++i) a_inner *= a.shape()[i];
    const Shape a_strides = contiguous_strides(a.shape());
    for (std::int64_t i = 0; i < index.numel(); ++i) check_index(idx[i], dim, "gather");
    dispatch(a.dtype(), "gather", [&]<class T>() {
        const T* s = a.data<T>();
        T* d = r.data<T>();
        parallel_for(index.numel(), kGrainCheap, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t t = b; t < e; ++t) {
                // Decompose t over the index shape, then address a with the same coordinates.
                std::int64_t rem = t, off = 0;
                for (std::size_t dd = is.size(); dd-- > 0;) {
                    const std::int64_t c = rem % is[dd];
                    rem /= is[dd];
                    std::int64_t coord = c;
                    if (static_cast<int>(dd) == axis) coord = idx[t] < 0 ? idx[t] + dim : idx[t];
                    off += coord * a_strides[dd];
                }
                d[t] = s[off];
            }
        });
    });
    (void)outer, (void)inner, (void)n, (void)a_inner;
    return r;
}

Array scatter_add(const Array& src, const Shape& shape, int axis, const Array& index) {
    Array r = full(shape, src.dtype(), 0);
    const std::int64_t* idx = index.data<std::int64_t>();
    const Shape& is = index.shape();
    const Shape strides = contiguous_strides(shape);
    const std::int64_t dim = shape[axis];
    dispatch(src.dtype(), "gather backward", [&]<class T>() {
        const T* s = src.data<T>();
        T* d = r.data<T>();
        // Serial: scattered writes may collide; the fixed order keeps results deterministic.
        for (std::int64_t t = 0; t < index.numel(); ++t) {
            std::int64_t rem = t, off = 0;
            for (std::size_t dd = is.size(); dd-- > 0;) {
                const std::int64_t c = rem % is[dd];
                rem /= is[dd];
                std::int64_t coord = c;
                if (static_cast<int>(dd) == axis) coord = idx[t] < 0 ? idx[t] + dim : idx[t];
                off += coord * strides[dd];
            }
            d[off] += s[t];
        }
    });
    return r;
}

}  // namespace xg::engine

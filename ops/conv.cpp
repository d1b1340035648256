#include "conv.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "arithmetic.hpp"
#include "factories.hpp"
#include "linalg.hpp"
#include "reduction.hpp"
#include "shape_ops.hpp"

namespace xg {

namespace {
using Grads = std::vector<Tensor>;

std::string pair_str(Size2 p) { return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")"; }

// The geometry of a sliding window over [N,C,H,W].
struct Window {
    std::int64_t n, c, h, w;
    Size2 k, s, p, d;
    std::int64_t oh, ow;
};

Window make_window(const Shape& in, Size2 k, Size2 s, Size2 p, Size2 d, const char* op) {
    if (in.size() != 4)
        throw ShapeError(std::string(op) + ": expected a 4-d input [N,C,H,W], got shape " + shape_str(in));
    for (int a = 0; a < 2; ++a) {
        if (k[a] <= 0 || s[a] <= 0 || d[a] <= 0 || p[a] < 0)
            throw ValueError(std::string(op) + ": kernel " + pair_str(k) + ", stride " + pair_str(s) + ", dilation " +
                             pair_str(d) + " must be positive and padding " + pair_str(p) + " non-negative");
    }
    Window g{in[0], in[1], in[2], in[3], k, s, p, d, 0, 0};
    g.oh = conv_output_size(g.h, k[0], s[0], p[0], d[0]);
    g.ow = conv_output_size(g.w, k[1], s[1], p[1], d[1]);
    if (g.oh <= 0 || g.ow <= 0)
        throw ShapeError(std::string(op) + ": input " + shape_str(in) + " is too small for kernel " + pair_str(k) +
                         " with padding " + pair_str(p) + " and dilation " + pair_str(d));
    return g;
}

// Range [lo, hi) of output positions o whose tap o*s - p + t lands inside [0, n).
inline void valid_range(std::int64_t n, std::int64_t out, std::int64_t s, std::int64_t off, std::int64_t& lo,
                        std::int64_t& hi) {
    // o*s + off >= 0  <=>  o >= ceil(-off / s);   o*s + off < n  <=>  o < ceil((n - off) / s)
    auto ceil_div = [](std::int64_t a, std::int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
    lo = std::clamp<std::int64_t>(ceil_div(-off, s), 0, out);
    hi = std::clamp<std::int64_t>(ceil_div(n - off, s), lo, out);
}

// Unit strides and an output as wide as the image ("same" padding): the taps (i, j) of a whole plane
// are the image shifted by offh rows and offw columns, so a tap plane and the image overlap in one
// contiguous span: tap element h0 * ow + lo + q is image element begin + q for q < count. The
// taps of output rows [h0, h1) outside columns [w0, w1) fall outside the image (the span runs over
// them into the neighbouring row); rows outside [h0, h1) have no tap inside. (Rows of 14 or 28
// floats made a copy or add per row cost more than the work.)
struct ShiftedPlane {
    std::int64_t h0, h1, w0, w1;  // output rows and columns whose taps are inside the image
    std::int64_t lo, begin, count;
};
inline bool is_shifted_plane(const Window& g) { return g.s[0] == 1 && g.s[1] == 1 && g.ow == g.w; }
inline ShiftedPlane shifted_plane(const Window& g, std::int64_t offh, std::int64_t offw) {
    ShiftedPlane sp{};
    valid_range(g.h, g.oh, 1, offh, sp.h0, sp.h1);
    valid_range(g.w, g.ow, 1, offw, sp.w0, sp.w1);
    const std::int64_t src = (sp.h0 + offh) * g.w + offw, len = (sp.h1 - sp.h0) * g.ow;
    sp.lo = std::max<std::int64_t>(0, -src);
    sp.begin = src + sp.lo;
    sp.count = std::max<std::int64_t>(0, std::min(len, g.h * g.w - src) - sp.lo);
    return sp;
}

// im2col over the rows r * n + sample in [b, e) of the columns [C*kk, N*L] (one task's share).
template <class T>
void im2col_rows(const T* x, T* cols, const Window& g, std::int64_t b, std::int64_t e) {
    const std::int64_t kk = g.k[0] * g.k[1], plane = g.oh * g.ow, len = g.n * plane;
    for (std::int64_t t = b; t < e; ++t) {
        const std::int64_t r = t / g.n, n = t % g.n;
        const std::int64_t c = r / kk, i = (r / g.k[1]) % g.k[0], j = r % g.k[1];
        T* out = cols + r * len + n * plane;
        const T* img = x + (n * g.c + c) * g.h * g.w;
        const std::int64_t offh = i * g.d[0] - g.p[0], offw = j * g.d[1] - g.p[1];
        if (is_shifted_plane(g)) {
            const ShiftedPlane sp = shifted_plane(g, offh, offw);
            T* first = out + sp.h0 * g.ow;
            std::fill(out, first, T(0));
            if (sp.count > 0)
                std::memcpy(first + sp.lo, img + sp.begin, static_cast<std::size_t>(sp.count) * sizeof(T));
            for (std::int64_t oh = sp.h0; oh < sp.h1; ++oh) {
                T* o = out + oh * g.ow;
                std::fill(o, o + sp.w0, T(0));
                std::fill(o + sp.w1, o + g.ow, T(0));
            }
            std::fill(out + sp.h1 * g.ow, out + plane, T(0));
            continue;
        }
        std::int64_t w0, w1;
        valid_range(g.w, g.ow, g.s[1], offw, w0, w1);
        for (std::int64_t oh = 0; oh < g.oh; ++oh) {
            T* o = out + oh * g.ow;
            const std::int64_t ih = oh * g.s[0] + offh;
            if (ih < 0 || ih >= g.h) {
                std::fill(o, o + g.ow, T(0));
                continue;
            }
            const T* row = img + ih * g.w + offw;
            std::fill(o, o + w0, T(0));
            if (g.s[1] == 1)
                std::memcpy(o + w0, row + w0, static_cast<std::size_t>(w1 - w0) * sizeof(T));
            else
                for (std::int64_t ow = w0; ow < w1; ++ow) o[ow] = row[ow * g.s[1]];
            std::fill(o + w1, o + g.ow, T(0));
        }
    }
}

template <class T>
void im2col_kernel(const T* x, T* cols, const Window& g) {
    const std::int64_t plane = g.oh * g.ow;
    detail::parallel_for(g.c * g.k[0] * g.k[1] * g.n, std::max<std::int64_t>(1, detail::kGrainCheap / plane),
                         [&](std::int64_t b, std::int64_t e) { im2col_rows(x, cols, g, b, e); });
}

// col2im into the image planes t = n * C + c in [b, e) (one task's share): each plane is written by
// one task in a fixed order, so the sums do not depend on the thread count.
template <class T>
void col2im_planes(const T* cols, T* x, const Window& g, std::int64_t b, std::int64_t e) {
    const std::int64_t plane = g.oh * g.ow, len = g.n * plane;
    for (std::int64_t t = b; t < e; ++t) {
        const std::int64_t n = t / g.c, c = t % g.c;
        T* img = x + t * g.h * g.w;
        std::fill(img, img + g.h * g.w, T(0));
        for (std::int64_t i = 0; i < g.k[0]; ++i)
            for (std::int64_t j = 0; j < g.k[1]; ++j) {
                const T* in = cols + ((c * g.k[0] + i) * g.k[1] + j) * len + n * plane;
                const std::int64_t offh = i * g.d[0] - g.p[0], offw = j * g.d[1] - g.p[1];
                std::int64_t w0, w1;
                valid_range(g.w, g.ow, g.s[1], offw, w0, w1);
                for (std::int64_t oh = 0; oh < g.oh; ++oh) {
                    const std::int64_t ih = oh * g.s[0] + offh;
                    if (ih < 0 || ih >= g.h) continue;
                    T* row = img + ih * g.w + offw;
                    const T* src = in + oh * g.ow;
                    if (g.s[1] == 1)  // a unit stride vectorises
                        for (std::int64_t ow = w0; ow < w1; ++ow) row[ow] += src[ow];
                    else
                        for (std::int64_t ow = w0; ow < w1; ++ow) row[ow * g.s[1]] += src[ow];
                }
            }
    }
}

// col2im of all planes from columns the caller no longer needs: for a shifted plane, the taps that
// fall outside the image are zeroed in place and the tap plane is added as one span (the adds of
// col2im_planes, in the same order).
template <class T>
void col2im_scratch(T* cols, T* x, const Window& g) {
    if (!is_shifted_plane(g)) return col2im_planes(cols, x, g, 0, g.n * g.c);
    const std::int64_t plane = g.oh * g.ow, len = g.n * plane;
    for (std::int64_t t = 0; t < g.n * g.c; ++t) {
        const std::int64_t n = t / g.c, c = t % g.c;
        T* img = x + t * g.h * g.w;
        std::fill(img, img + g.h * g.w, T(0));
        for (std::int64_t i = 0; i < g.k[0]; ++i)
            for (std::int64_t j = 0; j < g.k[1]; ++j) {
                T* in = cols + ((c * g.k[0] + i) * g.k[1] + j) * len + n * plane;
                const std::int64_t offh = i * g.d[0] - g.p[0], offw = j * g.d[1] - g.p[1];
                const ShiftedPlane sp = shifted_plane(g, offh, offw);
                for (std::int64_t oh = sp.h0; oh < sp.h1; ++oh) {
                    std::fill(in + oh * g.ow, in + oh * g.ow + sp.w0, T(0));
                    std::fill(in + oh * g.ow + sp.w1, in + (oh + 1) * g.ow, T(0));
                }
                if (sp.count <= 0) continue;
                T* dst = img + sp.begin;
                const T* from = in + (sp.h0 * g.ow + sp.lo);
                for (std::int64_t q = 0; q < sp.count; ++q) dst[q] += from[q];
            }
    }
}

template <class T>
void col2im_kernel(const T* cols, T* x, const Window& g) {
    const std::int64_t kk = g.k[0] * g.k[1], plane = g.oh * g.ow;
    detail::parallel_for(g.n * g.c, std::max<std::int64_t>(1, detail::kGrainCheap / (kk * plane)),
                         [&](std::int64_t b, std::int64_t e) { col2im_planes(cols, x, g, b, e); });
}

void check_defined(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": the input is undefined");
}

Size2 default_stride(Size2 stride, Size2 kernel) { return stride[0] == 0 && stride[1] == 0 ? kernel : stride; }

// Index ops on [P, M] planes with an int64 index [P, K] into each plane (0 <= index < M, checked by the caller):
// take: y[p, k] = x[p, idx[p, k]];  scatter: y = zeros [P, M], y[p, idx[p, k]] += g[p, k].
// They are linear and each other's adjoint, so each is the other's gradient (to any order). Each plane is
// written by one task in index order: the sums do not depend on the thread count.
Tensor plane_scatter(const Tensor& g, const Array& idx, std::int64_t m);

Tensor plane_take(const Tensor& x, const Array& idx) {
    const std::int64_t planes = idx.size(0), k = idx.size(1), m = x.size(1);
    Array y({planes, k}, x.dtype());
    detail::dispatch_floating(x.dtype(), "max_pool2d_select", [&]<class T>() {
        const T* px = x.array().data<T>();
        const std::int64_t* pi = idx.data<std::int64_t>();
        T* py = y.data<T>();
        detail::parallel_for(planes, std::max<std::int64_t>(1, detail::kGrainCheap / std::max<std::int64_t>(k, 1)),
                             [&](std::int64_t b, std::int64_t e) {
                                 for (std::int64_t p = b; p < e; ++p)
                                     for (std::int64_t j = 0; j < k; ++j) py[p * k + j] = px[p * m + pi[p * k + j]];
                             });
    });
    return make_result("max_pool2d_select", std::move(y), {x},
                       [idx, m](const Tensor& g, const Tensor&) { return Grads{plane_scatter(g, idx, m)}; });
}

Tensor plane_scatter(const Tensor& g, const Array& idx, std::int64_t m) {
    const std::int64_t planes = idx.size(0), k = idx.size(1);
    Array y({planes, m}, g.dtype());
    detail::dispatch_floating(g.dtype(), "max_pool2d_backward", [&]<class T>() {
        const T* pg = g.array().data<T>();
        const std::int64_t* pi = idx.data<std::int64_t>();
        T* py = y.data<T>();
        detail::parallel_for(planes, std::max<std::int64_t>(1, detail::kGrainCheap / std::max<std::int64_t>(m, 1)),
                             [&](std::int64_t b, std::int64_t e) {
                                 for (std::int64_t p = b; p < e; ++p) {
                                     T* row = py + p * m;
                                     std::fill(row, row + m, T(0));
                                     for (std::int64_t j = 0; j < k; ++j) row[pi[p * k + j]] += pg[p * k + j];
                                 }
                             });
    });
    return make_result("max_pool2d_backward", std::move(y), {g},
                       [idx](const Tensor& gg, const Tensor&) { return Grads{plane_take(gg, idx)}; });
}

// [A, B, L] -> [B, A, L] by whole rows of L (the conv output from [O, N, L] to [N, O, L]); self-adjoint.
Tensor swap01(const Tensor& x) {
    const std::int64_t a = x.size(0), b = x.size(1), l = x.size(2);
    Array y({b, a, l}, x.dtype());
    const std::size_t bytes = static_cast<std::size_t>(l) * dtype_size(x.dtype());
    const char* src = static_cast<const char*>(x.array().raw());
    char* dst = static_cast<char*>(y.raw());
    detail::parallel_for(a * b, std::max<std::int64_t>(1, detail::kGrainCheap / std::max<std::int64_t>(l, 1)),
                         [&](std::int64_t s, std::int64_t e) {
                             for (std::int64_t t = s; t < e; ++t) {  // t = j * a + i: output row (j, i)
                                 const std::int64_t j = t / a, i = t % a;
                                 std::memcpy(dst + t * bytes, src + (i * b + j) * bytes, bytes);
                             }
                         });
    return make_result("conv2d_layout", std::move(y), {x},
                       [](const Tensor& g, const Tensor&) { return Grads{swap01(g)}; });
}
}  // namespace

std::int64_t conv_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding,
                              std::int64_t dilation) {
    const std::int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

Tensor im2col(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
    check_defined(x, "im2col");
    detail::require_floating(x.dtype(), "im2col");
    const Window g = make_window(x.shape(), kernel, stride, padding, dilation, "im2col");
    Array cols({g.c * kernel[0] * kernel[1], g.n * g.oh * g.ow}, x.dtype());
    detail::dispatch_floating(x.dtype(), "im2col",
                              [&]<class T>() { im2col_kernel<T>(x.array().data<T>(), cols.data<T>(), g); });
    const Shape in = x.shape();
    return make_result("im2col", std::move(cols), {x}, [=](const Tensor& gr, const Tensor&) {
        return Grads{col2im(gr, in, kernel, stride, padding, dilation)};
    });
}

Tensor col2im(const Tensor& cols, const Shape& input_shape, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
    check_defined(cols, "col2im");
    detail::require_floating(cols.dtype(), "col2im");
    const Window g = make_window(input_shape, kernel, stride, padding, dilation, "col2im");
    const Shape want{g.c * kernel[0] * kernel[1], g.n * g.oh * g.ow};
    if (cols.shape() != want)
        throw ShapeError("col2im: columns of shape " + shape_str(cols.shape()) + " do not match image " +
                         shape_str(input_shape) + " with kernel " + pair_str(kernel) + " (expected " + shape_str(want) +
                         ")");
    Array img(input_shape, cols.dtype());
    detail::dispatch_floating(cols.dtype(), "col2im",
                              [&]<class T>() { col2im_kernel<T>(cols.array().data<T>(), img.data<T>(), g); });
    return make_result("col2im", std::move(img), {cols}, [=](const Tensor& gr, const Tensor&) {
        return Grads{im2col(gr, kernel, stride, padding, dilation)};
    });
}

namespace {
// --- conv2d, a few samples at a time -----------------------------------------------------------------
// The batch is cut into chunks of S samples whose columns [K = C*kh*kw, S*L] (L = oh*ow) fit in
// about kConvChunkBytes, so that im2col, the GEMMs and col2im of a chunk work in cache; the
// GEMMs' output [O, S*L] is written straight into the [N, O, oh, ow] result with the bias. The
// backward pass rebuilds each chunk's columns instead of keeping the whole batch's. With groups,
// group j's columns are rows [j Kg, (j + 1) Kg) of the chunk's (Kg = C/groups*kh*kw) and its
// weights rows [j Og, (j + 1) Og) of W [O, Kg]: one GEMM per group.
constexpr std::int64_t kConvChunkBytes = std::int64_t(512) << 10;
// The backward pass sums weight and bias gradients over at most this many fixed groups of chunks
// (each group in order, then the groups in order): the result does not depend on the thread count.
constexpr std::int64_t kConvGradGroups = 8;

struct ConvChunks {
    Window g;            // the whole batch
    std::int64_t o, kc;  // output channels, K = C*kh*kw
    std::int64_t l;      // oh*ow
    std::int64_t s;      // samples per chunk
    std::int64_t chunks;
    std::int64_t groups, og, kg;  // groups, O/groups, K/groups (a weight row)
    std::int64_t samples(std::int64_t chunk) const { return std::min(s, g.n - chunk * s); }
    Window chunk_window(std::int64_t chunk) const {
        Window w = g;
        w.n = samples(chunk);
        return w;
    }
};

ConvChunks conv_chunks(const Window& g, std::int64_t o, std::int64_t groups, std::size_t elem) {
    ConvChunks p{g, o, g.c * g.k[0] * g.k[1], g.oh * g.ow, 1, 0, groups, o / groups, g.c / groups * g.k[0] * g.k[1]};
    const std::int64_t per_sample = std::max<std::int64_t>(1, p.kc * p.l * static_cast<std::int64_t>(elem));
    p.s = std::clamp<std::int64_t>(kConvChunkBytes / per_sample, 1, std::max<std::int64_t>(g.n, 1));
    p.chunks = (g.n + p.s - 1) / p.s;
    return p;
}

template <class T>
void conv_forward_kernel(const T* x, const T* w, const T* bias, T* y, const ConvChunks& p) {
    detail::ensure_blas_single_threaded();
    const std::int64_t image = p.g.c * p.g.h * p.g.w, out = p.o * p.l;
    detail::parallel_for(p.chunks, 1, [&](std::int64_t c0, std::int64_t c1) {
        Array cols_buf({p.kc, p.s * p.l}, dtype_of<T>()), y_buf({p.o, p.s * p.l}, dtype_of<T>());
        T* cols = cols_buf.data<T>();
        T* yc = y_buf.data<T>();
        for (std::int64_t chunk = c0; chunk < c1; ++chunk) {
            const Window g = p.chunk_window(chunk);
            const std::int64_t n0 = chunk * p.s, sl = g.n * p.l;
            im2col_rows(x + n0 * image, cols, g, 0, p.kc * g.n);
            for (std::int64_t j = 0; j < p.groups; ++j)
                engine::gemm<T>(false, false, p.og, sl, p.kg, w + j * p.og * p.kg, p.kg, cols + j * p.kg * sl, sl,
                                yc + j * p.og * sl, sl, false);
            // [O, S, L] -> [S, O, L], adding the bias (z + b rounded as the unfused add).
            for (std::int64_t i = 0; i < g.n; ++i)
                for (std::int64_t oc = 0; oc < p.o; ++oc) {
                    const T* src = yc + oc * sl + i * p.l;
                    T* dst = y + (n0 + i) * out + oc * p.l;
                    if (bias) {
                        const T b = bias[oc];
                        for (std::int64_t j = 0; j < p.l; ++j) dst[j] = src[j] + b;
                    } else {
                        std::copy(src, src + p.l, dst);
                    }
                }
        }
    });
}

// dx (when wanted), dw and db (when wanted) of y = conv(x, w) + b for the gradient g [N, O, oh, ow].
template <class T>
void conv_backward_kernel(const T* x, const T* w, const T* g, T* dx, T* dw, T* db, const ConvChunks& p) {
    detail::ensure_blas_single_threaded();
    const std::int64_t image = p.g.c * p.g.h * p.g.w, out = p.o * p.l;
    const std::int64_t groups = std::min(p.chunks, kConvGradGroups);
    Array dw_parts, db_parts;
    if (dw) dw_parts = Array({groups, p.o * p.kg}, dtype_of<T>());
    if (db) db_parts = Array({groups, p.o}, dtype_of<T>());
    detail::parallel_for(groups, 1, [&](std::int64_t g0, std::int64_t g1) {
        Array cols_buf({p.kc, p.s * p.l}, dtype_of<T>()), g_buf({p.o, p.s * p.l}, dtype_of<T>());
        T* cols = cols_buf.data<T>();
        T* gc = g_buf.data<T>();
        for (std::int64_t grp = g0; grp < g1; ++grp) {
            T* dw_part = dw ? dw_parts.data<T>() + grp * p.o * p.kg : nullptr;
            T* db_part = db ? db_parts.data<T>() + grp * p.o : nullptr;
            if (db_part) std::fill(db_part, db_part + p.o, T(0));
            const std::int64_t first = grp * p.chunks / groups, last = (grp + 1) * p.chunks / groups;
            for (std::int64_t chunk = first; chunk < last; ++chunk) {
                const Window gw = p.chunk_window(chunk);
                const std::int64_t n0 = chunk * p.s, sl = gw.n * p.l;
                // g's chunk [S, O, L] -> [O, S, L]; the bias gradient sums it on the way.
                for (std::int64_t i = 0; i < gw.n; ++i)
                    for (std::int64_t oc = 0; oc < p.o; ++oc) {
                        const T* src = g + (n0 + i) * out + oc * p.l;
                        std::copy(src, src + p.l, gc + oc * sl + i * p.l);
                        if (db_part) db_part[oc] += detail::sum_contiguous(src, p.l);
                    }
                if (dw_part) {
                    im2col_rows(x + n0 * image, cols, gw, 0, p.kc * gw.n);
                    for (std::int64_t j = 0; j < p.groups; ++j)
                        engine::gemm<T>(false, true, p.og, p.kg, sl, gc + j * p.og * sl, sl, cols + j * p.kg * sl, sl,
                                        dw_part + j * p.og * p.kg, p.kg, chunk != first);
                }
                if (dx) {
                    for (std::int64_t j = 0; j < p.groups; ++j)
                        engine::gemm<T>(true, false, p.kg, sl, p.og, w + j * p.og * p.kg, p.kg, gc + j * p.og * sl, sl,
                                        cols + j * p.kg * sl, sl, false);
                    col2im_scratch(cols, dx + n0 * image, gw);
                }
            }
        }
    });
    auto sum_parts = [groups](const Array& parts, T* dst, std::int64_t len) {
        const T* src = parts.data<T>();
        std::copy(src, src + len, dst);
        for (std::int64_t grp = 1; grp < groups; ++grp)
            for (std::int64_t i = 0; i < len; ++i) dst[i] += src[grp * len + i];
    };
    if (dw) sum_parts(dw_parts, dw, p.o * p.kg);
    if (db) sum_parts(db_parts, db, p.o);
}

// --- depthwise conv2d with unit strides, without columns ------------------------------------------
// One input channel per group, at most kDepthwiseMaxOutputsPerChannel outputs per group, stride 1
// (the common depthwise layer). The input plane is copied once into a zero-padded plane of width
// PW = W + 2 pw; the output is computed in the same row width (OH x PW, its last PW - OW columns
// unused), so that tap (i, j) reads one long span of the
// padded plane at offset i dh PW + j dw: each output vector sums its taps in registers. The
// backward pass gathers dx the same way from the gradient laid out in that width (zeros in the
// unused columns and around it), and sums dw over the same spans, up to 9 taps per pass. Every
// plane of y and dx and every weight's gradient is summed by one task in a fixed order: results do
// not depend on the thread count.
// Up to 4 outputs per input channel: the spans recompute each output plane from the padded input,
// while the GEMM path builds the columns once for all of a group's outputs. Fwd+bwd, ms at 1 / 2
// threads, spans vs GEMMs: [128,32,28,28] with 1 output per channel 11-12 / 6-7 vs 19-20 / 10-15,
// 2 outputs 23.3 / 10.3 vs 19.3 / 11.6, 4 outputs 32.7 / 19.3 vs 36.8 / 15.9 (within noise); the
// Fashion-MNIST CNN's first layer (1 channel, 32 outputs) 6.7-6.9 / 3.5 vs 4.7-5.0 / 2.9.
constexpr std::int64_t kDepthwiseMaxOutputsPerChannel = 4;
inline bool is_depthwise_unit_stride(const ConvChunks& p) {
    return p.groups == p.g.c && p.kg == p.g.k[0] * p.g.k[1] && p.og <= kDepthwiseMaxOutputsPerChannel &&
           p.g.s[0] == 1 && p.g.s[1] == 1;
}

template <class T>
struct PaddedPlane {
    static constexpr std::int64_t W = xsimd::batch<T>::size;
    std::int64_t pw, plane;             // padded width; padded height * width
    std::int64_t span;                  // OH * PW, rounded up to whole vectors
    std::int64_t reach;                 // offset of the last tap
    std::vector<std::int64_t> offsets;  // of each tap
    explicit PaddedPlane(const Window& g)
        : pw(g.w + 2 * g.p[1]),
          plane((g.h + 2 * g.p[0]) * pw),
          span((g.oh * pw + W - 1) / W * W),
          reach((g.k[0] - 1) * g.d[0] * pw + (g.k[1] - 1) * g.d[1]) {
        for (std::int64_t i = 0; i < g.k[0]; ++i)
            for (std::int64_t j = 0; j < g.k[1]; ++j) offsets.push_back(i * g.d[0] * pw + j * g.d[1]);
    }
    std::int64_t padded_size() const { return span + reach; }  // >= plane: every span read inside
    // The image plane [H, W] into the middle of a zeroed padded plane.
    void pad(const T* img, T* padded, const Window& g) const {
        std::fill(padded, padded + padded_size(), T(0));
        for (std::int64_t h = 0; h < g.h; ++h)
            std::copy(img + h * g.w, img + (h + 1) * g.w, padded + (h + g.p[0]) * pw + g.p[1]);
    }
    // The gradient plane [OH, OW] in rows of width PW at offset `reach` of a zeroed buffer long
    // enough for the dx gather over the padded plane rounded up to whole vectors.
    std::int64_t widened_size() const { return span + 2 * reach + W; }
    void widen(const T* gp, T* buf, const Window& g) const {
        std::fill(buf, buf + widened_size(), T(0));
        for (std::int64_t oh = 0; oh < g.oh; ++oh)
            std::copy(gp + oh * g.ow, gp + (oh + 1) * g.ow, buf + reach + oh * pw);
    }
};

template <class T>
void depthwise_forward_kernel(const T* x, const T* w, const T* bias, T* y, const ConvChunks& p) {
    using B = xsimd::batch<T>;
    const Window& g = p.g;
    const PaddedPlane<T> pp(g);
    const std::int64_t kk = g.k[0] * g.k[1];
    detail::parallel_for(
        g.n * g.c, std::max<std::int64_t>(1, detail::kGrainCheap / (pp.span * kk * p.og)),
        [&](std::int64_t b, std::int64_t e) {
            std::vector<T> padded(static_cast<std::size_t>(pp.padded_size())), acc(static_cast<std::size_t>(pp.span));
            for (std::int64_t t = b; t < e; ++t) {
                const std::int64_t n = t / g.c, c = t % g.c;
                pp.pad(x + t * g.h * g.w, padded.data(), g);
                for (std::int64_t oc = c * p.og; oc < (c + 1) * p.og; ++oc) {
                    const T* wc = w + oc * kk;
                    for (std::int64_t q = 0; q < pp.span; q += B::size) {
                        B a(T(0));
                        for (std::int64_t tap = 0; tap < kk; ++tap)
                            a = xsimd::fma(B(wc[tap]), B::load_unaligned(padded.data() + q + pp.offsets[tap]), a);
                        a.store_unaligned(acc.data() + q);
                    }
                    T* out = y + (n * p.o + oc) * p.l;
                    const T b0 = bias ? bias[oc] : T(0);
                    for (std::int64_t oh = 0; oh < g.oh; ++oh)
                        for (std::int64_t ow = 0; ow < g.ow; ++ow) out[oh * g.ow + ow] = acc[oh * pp.pw + ow] + b0;
                }
            }
        });
}

template <class T>
void depthwise_backward_kernel(const T* x, const T* w, const T* g, T* dx, T* dw, T* db, const ConvChunks& p) {
    using B = xsimd::batch<T>;
    const Window& win = p.g;
    const PaddedPlane<T> pp(win);
    const std::int64_t kk = win.k[0] * win.k[1], image = win.h * win.w;
    if (dx) {
        // Input plane (n, c) gathers the taps of its og output planes: dpadded[m] = sum over taps of
        // w_tap * g_wide[m - offset_tap].
        const std::int64_t cover = (pp.plane + B::size - 1) / B::size * B::size;
        auto input_planes = [&](std::int64_t b, std::int64_t e) {
            std::vector<T> dpadded(static_cast<std::size_t>(cover)), wide(static_cast<std::size_t>(pp.widened_size()));
            for (std::int64_t t = b; t < e; ++t) {
                const std::int64_t n = t / win.c, c = t % win.c;
                for (std::int64_t oc = c * p.og; oc < (c + 1) * p.og; ++oc) {
                    pp.widen(g + (n * p.o + oc) * p.l, wide.data(), win);
                    const T* wc = w + oc * kk;
                    const T* gw = wide.data() + pp.reach;
                    for (std::int64_t m = 0; m < cover; m += B::size) {
                        B a = oc == c * p.og ? B(T(0)) : B::load_unaligned(dpadded.data() + m);
                        for (std::int64_t tap = 0; tap < kk; ++tap)
                            a = xsimd::fma(B(wc[tap]), B::load_unaligned(gw + m - pp.offsets[tap]), a);
                        a.store_unaligned(dpadded.data() + m);
                    }
                }
                T* img = dx + t * image;
                for (std::int64_t h = 0; h < win.h; ++h) {
                    const T* row = dpadded.data() + (h + win.p[0]) * pp.pw + win.p[1];
                    std::copy(row, row + win.w, img + h * win.w);
                }
            }
        };
        detail::parallel_for(win.n * win.c, std::max<std::int64_t>(1, detail::kGrainCheap / (pp.span * kk * p.og)),
                             input_planes);
    }
    if (dw || db) {
        // Output channel oc: its kk weight gradients (up to 9 taps per pass over the spans, held in
        // registers) and its bias gradient, summed over the batch in order.
        constexpr std::int64_t kTapsPerPass = 9;
        detail::parallel_for(p.o, 1, [&](std::int64_t b, std::int64_t e) {
            std::vector<T> padded(static_cast<std::size_t>(pp.padded_size())),
                wide(static_cast<std::size_t>(pp.widened_size()));
            for (std::int64_t oc = b; oc < e; ++oc) {
                const std::int64_t c = oc / p.og;
                if (db) db[oc] = T(0);
                if (dw) std::fill(dw + oc * kk, dw + (oc + 1) * kk, T(0));
                for (std::int64_t n = 0; n < win.n; ++n) {
                    const T* gp = g + (n * p.o + oc) * p.l;
                    if (db) db[oc] += detail::sum_contiguous(gp, p.l);
                    if (!dw) continue;
                    pp.pad(x + (n * win.c + c) * image, padded.data(), win);
                    pp.widen(gp, wide.data(), win);
                    const T* gw = wide.data() + pp.reach;
                    for (std::int64_t t0 = 0; t0 < kk; t0 += kTapsPerPass) {
                        const std::int64_t taps = std::min(kTapsPerPass, kk - t0);
                        B acc[kTapsPerPass];
                        for (std::int64_t t = 0; t < taps; ++t) acc[t] = B(T(0));
                        for (std::int64_t q = 0; q < pp.span; q += B::size) {
                            const B gv = B::load_unaligned(gw + q);
                            for (std::int64_t t = 0; t < taps; ++t)
                                acc[t] =
                                    xsimd::fma(gv, B::load_unaligned(padded.data() + q + pp.offsets[t0 + t]), acc[t]);
                        }
                        for (std::int64_t t = 0; t < taps; ++t) dw[oc * kk + t0 + t] += xsimd::hadd(acc[t]);
                    }
                }
            }
        });
    }
}

// The same gradients as differentiable ops (for a backward pass that records a graph): the adjoints
// of y = W [O, K] . im2col(x) [K, N*L] + b, per group. x is needed (defined) only for dw, w only for dx.
std::vector<Tensor> conv2d_grads_recorded(const Tensor& g, const Tensor& x, const Tensor& w, const Window& win,
                                          const ConvChunks& p, bool nx, bool nw, bool nb) {
    const std::int64_t o = p.o, nl = win.n * p.l;
    const Tensor g2 = reshape(swap01(reshape(g, {win.n, o, p.l})), {o, nl});
    // Groups as a leading batch axis of the products (one group: plain matrices).
    const Shape wg = p.groups == 1 ? Shape{o, p.kg} : Shape{p.groups, p.og, p.kg};
    const Shape gg = p.groups == 1 ? Shape{o, nl} : Shape{p.groups, p.og, nl};
    const Shape cg = p.groups == 1 ? Shape{p.kc, nl} : Shape{p.groups, p.kg, nl};
    Tensor dx, dw, db;
    if (nx)
        dx = col2im(reshape(matmul_t(reshape(w, wg), reshape(g2, gg), true, false), {p.kc, nl}),
                    {win.n, win.c, win.h, win.w}, win.k, win.s, win.p, win.d);
    if (nw)
        dw = reshape(matmul_t(reshape(g2, gg), reshape(im2col(x, win.k, win.s, win.p, win.d), cg), false, true),
                     {o, win.c / p.groups, win.k[0], win.k[1]});
    if (nb) db = sum(g2, {1});
    return {dx, dw, db};
}

Tensor conv2d_chunked(const Tensor& x, const Tensor& weight, const Tensor& bias, const Window& win,
                      std::int64_t groups) {
    Dtype d = promote(x.dtype(), weight.dtype());
    if (bias.defined()) d = promote(d, bias.dtype());
    detail::require_floating(d, "conv2d");
    const Tensor X = x.to(d), W = weight.to(d), B = bias.defined() ? bias.to(d) : Tensor();
    const std::int64_t o = W.size(0);
    const ConvChunks p = conv_chunks(win, o, groups, dtype_size(d));
    Array y({win.n, o, win.oh, win.ow}, d);
    const Array xa = X.array(), wa = W.array();
    const Array ba = B.defined() ? B.array() : Array();
    const bool depthwise = is_depthwise_unit_stride(p);
    detail::dispatch_floating(d, "conv2d", [&]<class T>() {
        const T* bp = B.defined() ? ba.data<T>() : nullptr;
        if (depthwise)
            depthwise_forward_kernel<T>(xa.data<T>(), wa.data<T>(), bp, y.data<T>(), p);
        else
            conv_forward_kernel<T>(xa.data<T>(), wa.data<T>(), bp, y.data<T>(), p);
    });
    if (!needs_record({X, W, B})) return Tensor(std::move(y));
    const bool nx = X.requires_grad(), nw = W.requires_grad(), nb = B.defined() && B.requires_grad();
    Saved sx(nw ? X : Tensor(), "conv2d"), sw(nx ? W : Tensor(), "conv2d");
    return make_result(
        "conv2d", std::move(y), {X, W, B}, [sx, sw, nx, nw, nb, win, p, d](const Tensor& g, const Tensor&) {
            const Tensor& xv = sx.get();
            const Tensor& wv = sw.get();
            if (needs_record({g, xv, wv})) return conv2d_grads_recorded(g.to(d), xv, wv, win, p, nx, nw, nb);
            const Array ga = g.array().to(d);
            const Array xa2 = nw ? xv.array() : Array(), wa2 = nx ? wv.array() : Array();
            Array dx, dw, db;
            if (nx) dx = Array({win.n, win.c, win.h, win.w}, d);
            if (nw) dw = Array({p.o, win.c / p.groups, win.k[0], win.k[1]}, d);
            if (nb) db = Array({p.o}, d);
            detail::dispatch_floating(d, "conv2d_backward", [&]<class T>() {
                const auto kernel =
                    is_depthwise_unit_stride(p) ? depthwise_backward_kernel<T> : conv_backward_kernel<T>;
                kernel(nw ? xa2.data<T>() : nullptr, nx ? wa2.data<T>() : nullptr, ga.data<T>(),
                       nx ? dx.data<T>() : nullptr, nw ? dw.data<T>() : nullptr, nb ? db.data<T>() : nullptr, p);
            });
            return std::vector<Tensor>{nx ? Tensor(std::move(dx)) : Tensor(), nw ? Tensor(std::move(dw)) : Tensor(),
                                       nb ? Tensor(std::move(db)) : Tensor()};
        });
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2 stride, Size2 padding, Size2 dilation,
              std::int64_t groups) {
    check_defined(x, "conv2d");
    check_defined(weight, "conv2d");
    if (weight.ndim() != 4)
        throw ShapeError("conv2d: expected a 4-d weight [O, C/groups, kh, kw], got shape " + shape_str(weight.shape()));
    if (x.ndim() != 4) throw ShapeError("conv2d: expected a 4-d input [N,C,H,W], got shape " + shape_str(x.shape()));
    if (groups <= 0) throw ValueError("conv2d: groups must be positive, got " + std::to_string(groups));
    const std::int64_t n = x.size(0), c = x.size(1), o = weight.size(0), cg = weight.size(1);
    if (c != cg * groups || o % groups != 0)
        throw ShapeError("conv2d: input " + shape_str(x.shape()) + " with " + std::to_string(c) +
                         " channels and weight " + shape_str(weight.shape()) + " do not fit " + std::to_string(groups) +
                         " groups (need C = weight.size(1) * groups and O divisible by groups)");
    if (bias.defined() && bias.shape() != Shape{o})
        throw ShapeError("conv2d: bias of shape " + shape_str(bias.shape()) + " does not match " + std::to_string(o) +
                         " output channels");
    const Size2 k{weight.size(2), weight.size(3)};
    const Window g = make_window(x.shape(), k, stride, padding, dilation, "conv2d");
    // Empty batches and channel counts take the composed ops (no zero-sized GEMM calls).
    if (n > 0 && c > 0 && o > 0) return conv2d_chunked(x, weight, bias, g, groups);
    const Tensor cols = im2col(x, k, stride, padding, dilation);  // [C*kk, N*L]
    Tensor y;                                                     // [O, N*L]
    if (groups == 1) {
        y = matmul_t(reshape(weight, {o, cg * k[0] * k[1]}), cols, false, false);
    } else {
        const Tensor w = reshape(weight, {groups, o / groups, cg * k[0] * k[1]});
        y = reshape(matmul_t(w, reshape(cols, {groups, cg * k[0] * k[1], n * g.oh * g.ow}), false, false),
                    {o, n * g.oh * g.ow});
    }
    if (bias.defined()) y = y + reshape(bias, {o, 1});
    if (n == 1) return reshape(y, {1, o, g.oh, g.ow});
    return reshape(swap01(reshape(y, {o, n, g.oh * g.ow})), {n, o, g.oh, g.ow});
}

namespace {
#if defined(__AVX512F__)
// max_pool_2x2 on float rows, 16 outputs at a time: each pair of input rows is loaded as 32 floats and
// split into even and odd columns (the four taps of 16 windows); the same selects as the scalar loop.
// Indices are computed in 32 bits: the caller makes sure the image plane has fewer than 2^31 elements.
void max_pool_2x2_avx512(const float* img, const float* plane_end, float* y, std::int64_t* idx, std::int64_t w,
                         std::int64_t oh_n, std::int64_t ow_n) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i tap_b = _mm512_set1_epi32(1), tap_c = _mm512_set1_epi32(static_cast<int>(w)),
                  tap_d = _mm512_set1_epi32(static_cast<int>(w + 1));
    auto take = [](__m512& m, __m512i& k, __m512 v, __m512i tap) {
        const __mmask16 t = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_mask_mov_ps(m, t, v);
        k = _mm512_mask_mov_epi32(k, t, tap);
    };
    for (std::int64_t oh = 0; oh < oh_n; ++oh) {
        const float* r0 = img + 2 * oh * w;
        const float* r1 = r0 + w;
        for (std::int64_t ow = 0; ow < ow_n; ow += 16) {
            const std::int64_t cnt = std::min<std::int64_t>(16, ow_n - ow);
            const __mmask16 out = static_cast<__mmask16>((1u << cnt) - 1);
            const __mmask16 lo = static_cast<__mmask16>((1u << std::min<std::int64_t>(16, 2 * cnt)) - 1);
            const __mmask16 hi = static_cast<__mmask16>((1u << std::max<std::int64_t>(0, 2 * cnt - 16)) - 1);
            __m512 a0, a1, c0, c1;
            if (r1 + 2 * ow + 32 <= plane_end) {
                // Whole loads, reading on into the next row where the windows end (those lanes are not
                // stored): masked loads with a computed mask ran 3x slower here (AMD Zen 5).
                a0 = _mm512_loadu_ps(r0 + 2 * ow), a1 = _mm512_loadu_ps(r0 + 2 * ow + 16);
                c0 = _mm512_loadu_ps(r1 + 2 * ow), c1 = _mm512_loadu_ps(r1 + 2 * ow + 16);
            } else {
                a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ow + 16);
                c0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ow), c1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ow + 16);
            }
            __m512 m = _mm512_permutex2var_ps(a0, even, a1);
            __m512i k = _mm512_setzero_si512();
            take(m, k, _mm512_permutex2var_ps(a0, odd, a1), tap_b);
            take(m, k, _mm512_permutex2var_ps(c0, even, c1), tap_c);
            take(m, k, _mm512_permutex2var_ps(c0, odd, c1), tap_d);
            _mm512_mask_storeu_ps(y + oh * ow_n + ow, out, m);
            // Window (oh, ow + l) starts at 2 oh w + 2 (ow + l).
            const __m512i at =
                _mm512_add_epi32(_mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(2 * oh * w + 2 * ow)), even), k);
            std::int64_t* o = idx + oh * ow_n + ow;
            _mm512_mask_storeu_epi64(o, static_cast<__mmask8>(out), _mm512_cvtepi32_epi64(_mm512_castsi512_si256(at)));
            _mm512_mask_storeu_epi64(o + 8, static_cast<__mmask8>(out >> 8),
                                     _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(at, 1)));
        }
    }
}
#endif

// 2x2 windows, stride 2, no padding or dilation (the common case): straight-line selects.
// Ties go to the first maximum in row-major order; a NaN wins (as PyTorch: take when v > best or v is NaN).
template <class T>
void max_pool_2x2(const T* __restrict img, T* __restrict y, std::int64_t* __restrict idx, std::int64_t h,
                  std::int64_t w, std::int64_t oh_n, std::int64_t ow_n) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
        if (h * w < (std::int64_t(1) << 31)) return max_pool_2x2_avx512(img, img + h * w, y, idx, w, oh_n, ow_n);
    }
#endif
    for (std::int64_t oh = 0; oh < oh_n; ++oh) {
        const T* r0 = img + 2 * oh * w;
        const T* r1 = r0 + w;
        for (std::int64_t ow = 0; ow < ow_n; ++ow) {
            const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            T m = a;
            std::int64_t k = 0;
            bool t = (b > m) | (b != b);
            m = t ? b : m, k = t ? 1 : k;
            t = (c > m) | (c != c);
            m = t ? c : m, k = t ? w : k;
            t = (d > m) | (d != d);
            m = t ? d : m, k = t ? w + 1 : k;
            y[oh * ow_n + ow] = m;
            idx[oh * ow_n + ow] = 2 * oh * w + 2 * ow + k;
        }
    }
}

// Any window: taps in the padding are skipped (they count as -inf); -1 marks a window with no tap inside.
template <class T>
void max_pool_any(const T* img, T* y, std::int64_t* idx, const Window& g) {
    for (std::int64_t oh = 0; oh < g.oh; ++oh)
        for (std::int64_t ow = 0; ow < g.ow; ++ow) {
            std::int64_t best = -1;
            T vb = -std::numeric_limits<T>::infinity();
            for (std::int64_t i = 0; i < g.k[0]; ++i) {
                const std::int64_t ih = oh * g.s[0] - g.p[0] + i * g.d[0];
                if (ih < 0 || ih >= g.h) continue;
                for (std::int64_t j = 0; j < g.k[1]; ++j) {
                    const std::int64_t iw = ow * g.s[1] - g.p[1] + j * g.d[1];
                    if (iw < 0 || iw >= g.w) continue;
                    const T v = img[ih * g.w + iw];
                    if (best < 0 || v > vb || v != v) best = ih * g.w + iw, vb = v;
                }
            }
            y[oh * g.ow + ow] = vb;
            idx[oh * g.ow + ow] = best;
        }
}
}  // namespace

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
    check_defined(x, "max_pool2d");
    detail::require_floating(x.dtype(), "max_pool2d");
    stride = default_stride(stride, kernel);
    const Window g = make_window(x.shape(), kernel, stride, padding, dilation, "max_pool2d");
    if (2 * padding[0] > kernel[0] || 2 * padding[1] > kernel[1])
        throw ValueError("max_pool2d: padding " + pair_str(padding) + " must be at most half the kernel " +
                         pair_str(kernel));
    // Values and the index of each window's maximum in one pass; the gradient scatters to the indices.
    const std::int64_t planes = g.n * g.c, plane = g.oh * g.ow, hw = g.h * g.w;
    Array idx({planes, plane}, Dtype::i64);
    Array y({g.n, g.c, g.oh, g.ow}, x.dtype());
    const bool fast =
        kernel == Size2{2, 2} && stride == Size2{2, 2} && padding == Size2{0, 0} && dilation == Size2{1, 1};
    detail::dispatch_floating(x.dtype(), "max_pool2d", [&]<class T>() {
        const T* px = x.array().data<T>();
        T* py = y.data<T>();
        std::int64_t* pi = idx.data<std::int64_t>();
        detail::parallel_for(
            planes, std::max<std::int64_t>(1, detail::kGrainCheap / hw), [&](std::int64_t b, std::int64_t e) {
                for (std::int64_t t = b; t < e; ++t) {
                    if (fast)
                        max_pool_2x2(px + t * hw, py + t * plane, pi + t * plane, g.h, g.w, g.oh, g.ow);
                    else
                        max_pool_any(px + t * hw, py + t * plane, pi + t * plane, g);
                }
            });
    });
    const std::int64_t* pi = idx.data<std::int64_t>();
    if (!fast && std::any_of(pi, pi + idx.numel(), [](std::int64_t v) { return v < 0; }))
        throw ValueError("max_pool2d: a window of kernel " + pair_str(kernel) + " with dilation " + pair_str(dilation) +
                         " lies entirely in the padding of input " + shape_str(x.shape()));
    const Shape in = x.shape();
    return make_result("max_pool2d", std::move(y), {x}, [idx, in, planes, plane, hw](const Tensor& gr, const Tensor&) {
        return Grads{reshape(plane_scatter(reshape(gr, {planes, plane}), idx, hw), in)};
    });
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding, bool count_include_pad) {
    check_defined(x, "avg_pool2d");
    detail::require_floating(x.dtype(), "avg_pool2d");
    stride = default_stride(stride, kernel);
    const Window g = make_window(x.shape(), kernel, stride, padding, {1, 1}, "avg_pool2d");
    if (2 * padding[0] > kernel[0] || 2 * padding[1] > kernel[1])
        throw ValueError("avg_pool2d: padding " + pair_str(padding) + " must be at most half the kernel " +
                         pair_str(kernel));
    // Channels folded into the batch: one column per window, one row per tap.
    const Tensor cols = im2col(reshape(x, {g.n * g.c, 1, g.h, g.w}), kernel, stride, padding);  // [kk, N*C*L]
    Tensor s = reshape(sum(cols, {0}), {g.n * g.c, g.oh * g.ow});
    if (count_include_pad || (padding[0] == 0 && padding[1] == 0)) {
        s = s / static_cast<double>(kernel[0] * kernel[1]);
    } else {
        Tensor counts;
        {
            NoGradGuard ng;
            counts =
                reshape(sum(im2col(ones({1, 1, g.h, g.w}, x.dtype()), kernel, stride, padding), {0}), {1, g.oh * g.ow});
        }
        s = s / counts;
    }
    return reshape(s, {g.n, g.c, g.oh, g.ow});
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
    check_defined(x, "adaptive_avg_pool2d");
    detail::require_floating(x.dtype(), "adaptive_avg_pool2d");
    if (x.ndim() != 4)
        throw ShapeError("adaptive_avg_pool2d: expected a 4-d input [N,C,H,W], got shape " + shape_str(x.shape()));
    if (output_size[0] <= 0 || output_size[1] <= 0)
        throw ValueError("adaptive_avg_pool2d: output size " + pair_str(output_size) + " must be positive");
    const std::int64_t h = x.size(2), w = x.size(3), oh = output_size[0], ow = output_size[1];
    if (oh == 1 && ow == 1) return mean(x, {2, 3}, true);
    if (h % oh == 0 && w % ow == 0) return avg_pool2d(x, {h / oh, w / ow});
    // General bins: y = P_h x P_w^T with P[i, r] = 1 / |bin i| for r in bin i.
    auto pool_matrix = [&](std::int64_t out, std::int64_t in) {
        std::vector<double> m(static_cast<std::size_t>(out * in), 0.0);
        for (std::int64_t i = 0; i < out; ++i) {
            const std::int64_t a = (i * in) / out, b = ((i + 1) * in + out - 1) / out;
            for (std::int64_t r = a; r < b; ++r) m[i * in + r] = 1.0 / static_cast<double>(b - a);
        }
        return tensor(m, {out, in}, x.dtype());
    };
    const Tensor ph = pool_matrix(oh, h), pw = pool_matrix(ow, w);
    return matmul_t(matmul_t(ph, x, false, false), pw, false, true);
}

}  // namespace xg

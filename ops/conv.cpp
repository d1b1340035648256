#include "conv.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../autograd/node.hpp"
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

template <class T>
void im2col_kernel(const T* x, T* cols, const Window& g) {
    const std::int64_t kk = g.k[0] * g.k[1], plane = g.oh * g.ow, len = g.n * plane;
    const std::int64_t tasks = g.c * kk * g.n;
    detail::parallel_for(tasks, std::max<std::int64_t>(1, detail::kGrainCheap / plane),
                         [&](std::int64_t b, std::int64_t e) {
                             for (std::int64_t t = b; t < e; ++t) {
                                 const std::int64_t r = t / g.n, n = t % g.n;
                                 const std::int64_t c = r / kk, i = (r / g.k[1]) % g.k[0], j = r % g.k[1];
                                 T* out = cols + r * len + n * plane;
                                 const T* img = x + (n * g.c + c) * g.h * g.w;
                                 const std::int64_t offh = i * g.d[0] - g.p[0], offw = j * g.d[1] - g.p[1];
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
                         });
}

// Each (n, c) image plane is written by one task in a fixed order: the sums do not depend on threads.
template <class T>
void col2im_kernel(const T* cols, T* x, const Window& g) {
    const std::int64_t kk = g.k[0] * g.k[1], plane = g.oh * g.ow, len = g.n * plane;
    detail::parallel_for(g.n * g.c, std::max<std::int64_t>(1, detail::kGrainCheap / (kk * plane)),
                         [&](std::int64_t b, std::int64_t e) {
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
                                             for (std::int64_t ow = w0; ow < w1; ++ow) row[ow * g.s[1]] += src[ow];
                                         }
                                     }
                             }
                         });
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
// 2x2 windows, stride 2, no padding or dilation (the common case): straight-line selects that vectorise.
// Ties go to the first maximum in row-major order; a NaN wins (as PyTorch: take when v > best or v is NaN).
template <class T>
void max_pool_2x2(const T* __restrict img, T* __restrict y, std::int64_t* __restrict idx, std::int64_t w,
                  std::int64_t oh_n, std::int64_t ow_n) {
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
        detail::parallel_for(planes, std::max<std::int64_t>(1, detail::kGrainCheap / hw),
                             [&](std::int64_t b, std::int64_t e) {
                                 for (std::int64_t t = b; t < e; ++t) {
                                     if (fast)
                                         max_pool_2x2(px + t * hw, py + t * plane, pi + t * plane, g.w, g.oh, g.ow);
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

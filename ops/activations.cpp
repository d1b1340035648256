// ops/: the built-in elementwise activations, sigmoid to celu (definitions in activation_defs.hpp).
#include "activation_defs.hpp"

namespace xg {
using namespace activation_defs;

// --- elementwise built-ins ----------------------------------------------------------------------
Tensor sigmoid(const Tensor& x) { return detail::elementwise_forward(sigmoid_def(), x); }
Tensor sigmoid_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(sigmoid_def(), g, y); }
Tensor tanh(const Tensor& x) { return detail::elementwise_forward(tanh_def(), x); }
Tensor tanh_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(tanh_def(), g, y); }
// relu saves one bit per element, y > 0, instead of its output: backward reads n/8 bytes instead
// of 4n (or 8n), and the output can be freed before backward. The bits are packed 64 to a word
// in an i64 array (word w holds elements 64w .. 64w + 63, element i in bit i % 64).
namespace {
constexpr std::int64_t kBitsPerWord = 64;

// y[i] = relu(x[i]) for i in [b, e) (b a multiple of 64), and the words of mask for those elements.
// Returns the sum of the y written, in reduce_sum's order for a chunk of a full sum starting at b
// (see Array::remember_sum): the AVX-512 path accumulates its full words as it goes.
template <class T>
T relu_with_mask(const T* x, T* y, std::uint64_t* mask, std::int64_t b, std::int64_t e) {
    using B = xsimd::batch<T>;
    B acc[2] = {B(T(0)), B(T(0))};
    std::int64_t summed_to = b;  // the words before it are in acc
    for (std::int64_t w0 = b; w0 < e; w0 += kBitsPerWord) {
        const std::int64_t w1 = std::min(w0 + kBitsPerWord, e);
        std::uint64_t bits = 0;
        std::int64_t i = w0;
#if defined(__AVX512F__)
        static_assert(sizeof(B) == 64, "the accumulators follow sum_contiguous's batches");
        if (w1 - w0 == kBitsPerWord) {
            if constexpr (std::is_same_v<T, float>) {
                for (int j = 0; j < 4; ++j, i += 16) {
                    const __m512 v = _mm512_loadu_ps(x + i);
                    // where(x <= 0, 0, x): NaN stays NaN (and gets derivative 0: NaN > 0 is false)
                    const __m512 r = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ),
                                                        _mm512_setzero_ps());
                    _mm512_storeu_ps(y + i, r);
                    acc[j & 1] += B(r);
                    bits |= std::uint64_t(_mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_GT_OQ)) << (16 * j);
                }
            } else {
                for (int j = 0; j < 8; ++j, i += 8) {
                    const __m512d v = _mm512_loadu_pd(x + i);
                    const __m512d r = _mm512_mask_mov_pd(v, _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_LE_OQ),
                                                         _mm512_setzero_pd());
                    _mm512_storeu_pd(y + i, r);
                    acc[j & 1] += B(r);
                    bits |= std::uint64_t(_mm512_cmp_pd_mask(r, _mm512_setzero_pd(), _CMP_GT_OQ)) << (8 * j);
                }
            }
            if (summed_to == w0) summed_to = w1;
        }
#endif
        for (; i < w1; ++i) {
            const T r = x[i] <= 0 ? T(0) : x[i];
            y[i] = r;
            bits |= std::uint64_t(r > 0) << (i - w0);
        }
        mask[w0 / kBitsPerWord] = bits;
    }
    return detail::sum_contiguous_from(y, summed_to, e, acc[0], acc[1]);  // the rest read back, from cache
}

// out[i] = bit i of mask ? g[i] : 0 for i in [b, e) (b a multiple of 64); g is one value when
// g_uniform. A select, not a product: a NaN or inf gradient gives 0 where relu' = 0 (PyTorch's
// threshold_backward does the same).
template <class T>
void select_by_mask(const T* g, bool g_uniform, const std::uint64_t* mask, T* out, std::int64_t b, std::int64_t e) {
    for (std::int64_t w0 = b; w0 < e; w0 += kBitsPerWord) {
        const std::int64_t w1 = std::min(w0 + kBitsPerWord, e);
        const std::uint64_t bits = mask[w0 / kBitsPerWord];
        std::int64_t i = w0;
#if defined(__AVX512F__)
        if (w1 - w0 == kBitsPerWord) {
            if constexpr (std::is_same_v<T, float>) {
                for (int j = 0; j < 4; ++j, i += 16) {
                    const auto k = static_cast<__mmask16>(bits >> (16 * j));
                    _mm512_storeu_ps(out + i, g_uniform ? _mm512_maskz_mov_ps(k, _mm512_set1_ps(g[0]))
                                                        : _mm512_maskz_loadu_ps(k, g + i));
                }
            } else {
                for (int j = 0; j < 8; ++j, i += 8) {
                    const auto k = static_cast<__mmask8>(bits >> (8 * j));
                    _mm512_storeu_pd(out + i, g_uniform ? _mm512_maskz_mov_pd(k, _mm512_set1_pd(g[0]))
                                                        : _mm512_maskz_loadu_pd(k, g + i));
                }
            }
        }
#endif
        for (; i < w1; ++i) out[i] = (bits >> (i - w0)) & 1 ? g[g_uniform ? 0 : i] : T(0);
    }
}

// g where the saved mask is set, 0 elsewhere: relu's backward, linear in g (its own derivative).
Tensor relu_mask_backward(const Tensor& g, const Array& mask, std::int64_t n, Dtype dtype) {
    const char* op = "relu_backward";
    detail::require_defined(g, op, "the gradient");
    if (g.numel() != n)
        throw ShapeError(std::string(op) + ": gradient of shape " + shape_str(g.shape()) + " for an output of " +
                         std::to_string(n) + " elements");
    const Array ga = g.array().to(dtype);
    Array out(g.shape(), dtype);
    detail::dispatch_floating(dtype, op, [&]<class T>() {
        const bool uniform = ga.is_uniform() && n != 1;
        const T* pg = uniform ? static_cast<const T*>(ga.uniform_value()) : ga.template data<T>();
        const auto* pm = reinterpret_cast<const std::uint64_t*>(mask.template data<std::int64_t>());
        T* po = out.template data<T>();
        const std::int64_t words = (n + kBitsPerWord - 1) / kBitsPerWord;
        detail::parallel_for(words,
                             std::max<std::int64_t>(1, detail::scaled_grain<T>(detail::kGrainCheap) / kBitsPerWord),
                             [&](std::int64_t wb, std::int64_t we) {
                                 select_by_mask(pg, uniform, pm, po, wb * kBitsPerWord, std::min(we * kBitsPerWord, n));
                             });
    });
    if (!needs_record({g})) return Tensor(std::move(out));
    return make_result(op, std::move(out), {g}, [mask, n, dtype](const Tensor& gg, const Tensor&) {
        return std::vector<Tensor>{relu_mask_backward(gg, mask, n, dtype)};
    });
}
}  // namespace

Tensor relu(const Tensor& x) {
    detail::require_defined(x, "relu");
    if (!is_floating(x.dtype()) || !needs_record({x})) return detail::elementwise_forward(relu_def(), x);
    const Dtype dtype = x.dtype();
    const std::int64_t n = x.numel();
    Array y(x.shape(), dtype);
    Array mask(Shape{(n + kBitsPerWord - 1) / kBitsPerWord}, Dtype::i64);
    detail::dispatch_floating(dtype, "relu", [&]<class T>() {
        const T* px = x.array().template data<T>();
        T* py = y.template data<T>();
        auto* pm = reinterpret_cast<std::uint64_t*>(mask.template data<std::int64_t>());
        // Chunks of the full sum (kReduceChunk, a multiple of 64 elements), remembered as in simd_map_arrays.
        const T sum = detail::for_each_sum_chunk<T>(
            n, detail::scaled_grain<T>(detail::kGrainCheap),
            [&](std::int64_t b, std::int64_t e) { return relu_with_mask(px, py, pm, b, e); });
        y.remember_sum(static_cast<double>(sum));
    });
    return make_result("relu", std::move(y), {x}, [mask = std::move(mask), n, dtype](const Tensor& g, const Tensor&) {
        return std::vector<Tensor>{relu_mask_backward(g, mask, n, dtype)};
    });
}
Tensor relu_backward(const Tensor& g, const Tensor& y) { return detail::chain_op<0>(relu_def(), g, y); }

Tensor relu6(const Tensor& x) { return detail::elementwise_forward(hardtanh_def("relu6", 0.0, 6.0), x); }

Tensor hardtanh(const Tensor& x, double min_val, double max_val) {
    if (!(min_val <= max_val))
        throw ValueError("hardtanh: min_val " + std::to_string(min_val) + " is greater than max_val " +
                         std::to_string(max_val));
    return detail::elementwise_forward(hardtanh_def("hardtanh", min_val, max_val), x);
}

Tensor leaky_relu(const Tensor& x, double negative_slope) {
    return detail::elementwise_forward(leaky_relu_def("leaky_relu", negative_slope), x);
}

Tensor prelu(const Tensor& x, const Tensor& weight) {
    detail::require_defined(x, "prelu");
    detail::require_defined(weight, "prelu", "the weight");
    Tensor w = weight;
    if (weight.numel() != 1) {
        if (x.ndim() < 2 || weight.ndim() != 1 || weight.numel() != x.size(1))
            throw ShapeError("prelu: weight of shape " + shape_str(weight.shape()) +
                             " must have 1 element or one per channel (dimension 1) of the input of shape " +
                             shape_str(x.shape()));
        Shape s(x.ndim() - 1, 1);
        s[0] = weight.numel();
        w = reshape(weight, s);
    }
    return detail::param_forward(prelu_def(), x, w);
}

Tensor rrelu(const Tensor& x, double lower, double upper, bool training) {
    if (!(lower <= upper))
        throw ValueError("rrelu: lower " + std::to_string(lower) + " is greater than upper " + std::to_string(upper));
    if (!training) return detail::elementwise_forward(leaky_relu_def("rrelu", (lower + upper) / 2), x);
    detail::require_defined(x, "rrelu");
    detail::require_floating(x.dtype(), "rrelu");
    // One slope per element (used where x <= 0), from the seeded generator; a constant of the graph.
    return detail::param_forward(rrelu_train_def(), x, uniform(x.shape(), lower, upper, x.dtype()));
}

Tensor elu(const Tensor& x, double alpha) {
    if (alpha >= 0) return detail::elementwise_forward(elu_output_def("elu", alpha, 1.0), x);
    return detail::elementwise_forward(elu_input_def("elu", alpha), x);
}

Tensor selu(const Tensor& x) {
    static const auto d = elu_output_def("selu", kSeluAlpha, kSeluScale);
    return detail::elementwise_forward(d, x);
}

Tensor celu(const Tensor& x, double alpha) {
    if (alpha == 0) throw ValueError("celu: alpha must not be 0");
    return detail::elementwise_forward(celu_def(alpha), x);
}

}  // namespace xg

// ops/: the template that turns a generic scalar function into an elementwise activation op:
// a vectorised (xsimd), parallel (TBB) forward kernel recorded in the graph, and a chain of
// derivative ops, each one fused pass and each differentiable by the next:
//     forward    y = f(x)                  saves x, y, or both (what the derivative needs)
//     order k    B_k(h, u) = h * phi^(k)(u)  where phi(u) = f'(x) written in terms of u
// B_k's own gradient is B_k(gg, u) for h and B_(k+1)(gg * h, u) for u, so every order of
// derivative is available up to the nesting depth of the dual numbers that compute phi^(k).
// Functions of a parameter tensor, f(x, a), get the mixed partials d^(i+j) f / dx^i da^j the same way.
// Built-in activations (ops/activations.cpp) and user activations (ops/user_activation.hpp) share it.
// Internal header: pulls in TBB and xsimd (not xtensor).
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "arithmetic.hpp"
#include "scalar_math.hpp"

namespace xg::detail {

/// Highest order k of the derivative chain B_k (B_0 is the first derivative of f as used by backward).
inline constexpr int kMaxChainOrder = 3;
/// Highest total order of mixed partials for activations with a parameter.
inline constexpr int kMaxParamOrder = 3;

template <class>
inline constexpr bool always_false_v = false;

/// The result r of a scalar function called with batches, as a batch B (constants are broadcast).
template <class B, class R>
B as_batch(const R& r) {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, B>)
        return r;
    else if constexpr (std::is_arithmetic_v<std::remove_cvref_t<R>>)
        return B(static_cast<typename B::value_type>(r));
    else
        static_assert(always_false_v<R>,
                      "an activation's scalar function must return the type it was called with (or a constant)");
}

/// Outputs at least this large (bytes) are written with non-temporal stores: they cannot stay in
/// cache anyway, and streaming them saves the read-for-ownership of every written line. Measured
/// here (fwd + sum + backward pipeline, caching allocator): 16 MiB outputs are faster with normal
/// stores (buffers reused from cache), 64 MiB ones about 10-20% faster streamed.
inline constexpr std::int64_t kStreamBytes = std::int64_t(32) << 20;

/// Stores b at p (aligned to the batch size), bypassing the cache where the ISA allows.
template <class T, class A>
inline void stream_store(T* p, const xsimd::batch<T, A>& b) {
#if defined(__AVX512F__)
    if constexpr (sizeof(b) == 64) {
        if constexpr (std::is_same_v<T, float>)
            return _mm512_stream_ps(p, b);
        else
            return _mm512_stream_pd(p, b);
    }
#endif
#if defined(__AVX__)
    if constexpr (sizeof(b) == 32) {
        if constexpr (std::is_same_v<T, float>)
            return _mm256_stream_ps(p, b);
        else
            return _mm256_stream_pd(p, b);
    }
#endif
    b.store_aligned(p);
}

/// Orders this thread's non-temporal stores before later stores (they are weakly ordered).
inline void stream_fence() {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

// Runs out[i] = k(in_0[i], ..., in_{N-1}[i]) over [b, e) on batches; inputs flagged scalar are broadcast.
// With Stream, o + b is batch-aligned and the full batches are written with non-temporal stores.
// With Sum, [b, e) is one chunk of a full sum (kReduceChunk) and the result is the sum of the
// values written, in sum_contiguous's order exactly (its two accumulators, finished by
// sum_contiguous_from): two adds per two batches here, against a pass over the output later.
template <bool Stream, bool Sum, class T, std::size_t N, class K, std::size_t... I>
T simd_run(const std::array<const T*, N>& p, const std::array<bool, N>& scalar, bool any_scalar, T* o, std::int64_t b,
           std::int64_t e, const K& k, std::index_sequence<I...>) {
    using B = xsimd::batch<T>;
    constexpr std::int64_t W = B::size;
    auto put = [o](std::int64_t at, const B& v) {
        if constexpr (Stream)
            stream_store(o + at, v);
        else
            v.store_unaligned(o + at);
    };
    std::array<B, 2> accumulators{B(T(0)), B(T(0))};
    std::int64_t summed_to = b;  // [b, summed_to) is in the accumulators
    auto run = [&](auto&& load) {
        std::int64_t i = b;
        if constexpr (Sum) {
            B acc0(T(0)), acc1(T(0));
            for (; i + 2 * W <= e; i += 2 * W) {
                const B v0 = as_batch<B>(k(load(I, i)...));
                const B v1 = as_batch<B>(k(load(I, i + W)...));
                put(i, v0);
                put(i + W, v1);
                acc0 += v0;
                acc1 += v1;
            }
            accumulators = {acc0, acc1};
            summed_to = i;
        }
        for (; i + W <= e; i += W) put(i, as_batch<B>(k(load(I, i)...)));
        return i;
    };
    std::int64_t i;
    if (!any_scalar) {
        i = run([&p](std::size_t j, std::int64_t at) { return B::load_unaligned(p[j] + at); });
    } else {
        std::array<B, N> bc;
        for (std::size_t j = 0; j < N; ++j) bc[j] = B(p[j][0]);
        i = run([&](std::size_t j, std::int64_t at) { return scalar[j] ? bc[j] : B::load_unaligned(p[j] + at); });
    }
    if (i < e) {
        // Tail: pad each input with its last valid element (no spurious inf/NaN lanes).
        alignas(64) T buf[N][W];
        for (std::size_t j = 0; j < N; ++j)
            for (std::int64_t l = 0; l < W; ++l) buf[j][l] = scalar[j] ? p[j][0] : p[j][std::min(i + l, e - 1)];
        alignas(64) T res[W];
        as_batch<B>(k(B::load_aligned(buf[I])...)).store_aligned(res);
        for (std::int64_t l = 0; l < e - i; ++l) o[i + l] = res[l];
    }
    if constexpr (Sum)
        return sum_contiguous_from(o, summed_to, e, accumulators[0], accumulators[1]);
    else
        return T(0);
}

/// A new array of in[0]'s shape with out = k(in...) elementwise, k written for xsimd batches.
/// All inputs must have in[0]'s dtype (floating) and either its shape or a single element.
/// `reuse` (optional) is the index of an input whose buffer may receive the result: the caller
/// guarantees that nothing else holds it and that it is not read afterwards. Each element is read
/// before it is overwritten, so writing in place is safe; it spares a buffer that is not in cache.
/// With RememberSum, the kernel also sums the output as it writes it (see Array::remember_sum):
/// for an op's output that a loss may sum (an activation's forward), so that a full sum after it
/// reads nothing.
template <std::size_t N, bool RememberSum = false, class K>
Array simd_map_arrays(const char* op, const std::array<Array, N>& in, const K& k, std::int64_t grain, int reuse = -1) {
    return dispatch_floating(in[0].dtype(), op, [&]<class T>() {
        const bool in_place = reuse >= 0 && in[reuse].dtype() == in[0].dtype() && in[reuse].shape() == in[0].shape() &&
                              !in[reuse].is_uniform();
        Array out = in_place ? in[reuse] : Array(in[0].shape(), in[0].dtype());
        const std::int64_t n = out.numel();
        std::array<const T*, N> p;
        std::array<bool, N> scalar;
        bool any_scalar = false;
        for (std::size_t j = 0; j < N; ++j) {
            // A lazily filled constant (the gradient of a sum) is read as one value, never materialised.
            const bool uniform = in[j].is_uniform() && n != 1;
            p[j] = uniform ? static_cast<const T*>(in[j].uniform_value()) : in[j].template data<T>();
            scalar[j] = uniform || (in[j].numel() == 1 && n != 1);
            any_scalar |= scalar[j];
        }
        T* o = out.template data<T>();
        constexpr std::int64_t W = xsimd::batch<T>::size;
        // In place, the lines are read anyway: streaming them out only costs (measured).
        const bool stream = !in_place && n * std::int64_t(sizeof(T)) >= kStreamBytes &&
                            reinterpret_cast<std::uintptr_t>(o) % (W * sizeof(T)) == 0;
        auto map = [&]<bool Stream, bool Sum>(std::int64_t b, std::int64_t e) {
            const T s = simd_run<Stream, Sum, T, N>(p, scalar, any_scalar, o, b, e, k, std::make_index_sequence<N>{});
            if constexpr (Stream) stream_fence();  // each thread orders its own non-temporal stores before the join
            return s;
        };
        if constexpr (RememberSum) {
            // Chunks of the full sum (kReduceChunk elements, a multiple of the batch: aligned stores stay aligned).
            out.remember_sum(static_cast<double>(for_each_sum_chunk<T>(n, grain, [&](std::int64_t b, std::int64_t e) {
                return stream ? map.template operator()<true, true>(b, e) : map.template operator()<false, true>(b, e);
            })));
        } else if (stream) {
            // Chunks start on batch boundaries so that every full batch store is aligned.
            parallel_for((n + W - 1) / W, std::max<std::int64_t>(1, grain / W), [&](std::int64_t b, std::int64_t e) {
                map.template operator()<true, false>(b * W, std::min(e * W, n));
            });
        } else {
            parallel_for(n, grain,
                         [&](std::int64_t b, std::int64_t e) { map.template operator()<false, false>(b, e); });
        }
        return out;
    });
}

/// f(x) and f'(x) elementwise in one pass over x (floating, any shape): the forward kernel of an
/// activation that saves its derivative. fd(v) returns both for an xsimd batch v, as a std::pair.
/// Like simd_map_arrays with RememberSum, it sums y on the way (chunk by chunk, as reduce_sum would).
template <class FD>
std::pair<Array, Array> simd_map_value_and_derivative(const char* op, const Array& x, const FD& fd,
                                                      std::int64_t grain) {
    return dispatch_floating(x.dtype(), op, [&]<class T>() {
        using B = xsimd::batch<T>;
        constexpr std::int64_t W = B::size;
        Array y(x.shape(), x.dtype()), dy(x.shape(), x.dtype());
        const std::int64_t n = y.numel();
        const T* px = x.template data<T>();
        T* py = y.template data<T>();
        T* pd = dy.template data<T>();
        auto step = [&](std::int64_t i) {
            const auto [fv, dv] = fd(B::load_unaligned(px + i));
            fv.store_unaligned(py + i);
            dv.store_unaligned(pd + i);
            return fv;
        };
        // One chunk of the full sum of y; the accumulation order is sum_contiguous's (see simd_run).
        auto run_chunk = [&](std::int64_t b, std::int64_t e) {
            std::int64_t i = b;
            B acc0(T(0)), acc1(T(0));
            for (; i + 2 * W <= e; i += 2 * W) {
                acc0 += step(i);
                acc1 += step(i + W);
            }
            const std::int64_t summed_to = i;
            for (; i + W <= e; i += W) step(i);
            if (i < e) {
                // Tail: pad with the last valid element (no spurious inf/NaN lanes), as simd_run does.
                alignas(64) T buf[W], ry[W], rd[W];
                for (std::int64_t l = 0; l < W; ++l) buf[l] = px[std::min(i + l, e - 1)];
                const auto [fv, dv] = fd(B::load_aligned(buf));
                fv.store_aligned(ry);
                dv.store_aligned(rd);
                for (std::int64_t l = 0; l < e - i; ++l) {
                    py[i + l] = ry[l];
                    pd[i + l] = rd[l];
                }
            }
            return sum_contiguous_from(py, summed_to, e, acc0, acc1);
        };
        y.remember_sum(static_cast<double>(for_each_sum_chunk<T>(n, grain, run_chunk)));
        return std::pair<Array, Array>(std::move(y), std::move(dy));
    });
}

inline void require_defined(const Tensor& t, const std::string& op, const char* what = "the input") {
    if (!t.defined()) throw ValueError(op + ": " + what + " is undefined");
}

/// Throws ShapeError naming op when the gradient's shape differs from the saved tensor's.
inline void require_same_shape(const Shape& gradient, const Shape& saved, const std::string& op) {
    if (gradient != saved)
        throw ShapeError(op + ": gradient shape " + shape_str(gradient) + " differs from the saved tensor's shape " +
                         shape_str(saved));
}
inline void require_same_shape(const Tensor& a, const Tensor& b, const std::string& op) {
    require_same_shape(a.shape(), b.shape(), op);
}

/// Name of the order-k derivative op of `name`: name_backward, name_backward2, ...
inline std::string chain_op_name(const std::string& name, int k) {
    return name + "_backward" + (k == 0 ? std::string() : std::to_string(k + 1));
}

// --- activations of one variable ----------------------------------------------------------------

/// What the forward op saves for backward.
enum class Saves {
    input,  ///< phi is a function of x
    /// phi is a function of y = f(x) (sigmoid' = y (1 - y)): x can be freed. When the output's
    /// tensor is gone by backward, the gradient is written into its buffer (see chain_op).
    output,
    /// phi is a function of x that costs more to compute than to read (gelu, silu, one-lambda user
    /// activations, whose f' comes from duals): the forward pass, which computes most of it anyway,
    /// also writes d = f'(x), and a backward that records no graph is g * d, one memory-bound
    /// pass, written into d's buffer on the node's last use. x is saved too, for a backward that
    /// records a graph (create_graph) and for the higher orders. Costs one more tensor of x's size
    /// until backward.
    derivative,
};

/// x -> f'(x) by one dual pass: the derivative of a one-lambda user activation.
template <class F>
struct AutoDerivative {
    F f;
    template <class X>
    X operator()(const X& x) const {
        return xg::derivative(f, x);
    }
};
template <class>
inline constexpr bool is_auto_derivative_v = false;
template <class F>
inline constexpr bool is_auto_derivative_v<AutoDerivative<F>> = true;

/// One elementwise activation: f, the first derivative d0 used by backward, and phi, the function
/// whose derivatives give the higher orders (the same function as d0; kept apart so that d0 can be
/// a cheaper formula of it).
template <Saves S, class F, class D0, class Phi>
struct ElementwiseDef {
    static constexpr Saves saves = S;
    std::string name;
    std::array<std::string, kMaxChainOrder + 1> op_names;
    F f;
    D0 d0;
    Phi phi;
    bool linear_pieces = false;  ///< phi is piecewise constant: phi' = 0, no gradient flows to u
    std::int64_t grain = kGrainTranscendental;

    ElementwiseDef(std::string n, F f_, D0 d0_, Phi phi_, bool linear = false,
                   std::int64_t grain_ = kGrainTranscendental)
        : name(std::move(n)),
          f(std::move(f_)),
          d0(std::move(d0_)),
          phi(std::move(phi_)),
          linear_pieces(linear),
          grain(grain_) {
        for (int k = 0; k <= kMaxChainOrder; ++k) op_names[k] = chain_op_name(name, k);
    }
};

/// Makes a shared definition (the ops of a graph keep it alive).
template <Saves S, class F, class D0, class Phi>
std::shared_ptr<const ElementwiseDef<S, F, D0, Phi>> make_def(std::string name, F f, D0 d0, Phi phi,
                                                              bool linear_pieces = false,
                                                              std::int64_t grain = kGrainTranscendental) {
    return std::make_shared<const ElementwiseDef<S, F, D0, Phi>>(std::move(name), std::move(f), std::move(d0),
                                                                 std::move(phi), linear_pieces, grain);
}

/// B_K(h, u) = h * phi^(K)(u). With `last_read_of_u`, the caller reads u no more: when nothing else
/// holds u or its buffer either (a saved output handed over by the backward pass, see
/// OpNode::apply) and no graph is recorded, the result is written into u's buffer.
template <int K, class Def>
Tensor chain_op(const std::shared_ptr<const Def>& def, const Tensor& h, const Tensor& u, bool last_read_of_u = false) {
    const std::string& op = def->op_names[K];
    require_defined(h, op, "the gradient");
    require_defined(u, op, "the saved tensor");
    require_same_shape(h, u, op);
    const Dtype d = promote(h.dtype(), u.dtype());
    require_floating(d, op.c_str());
    const bool record = needs_record({h, u});
    const bool reuse_u = last_read_of_u && !record && u.impl().use_count() == 1 && u.array().unique();
    Array r = simd_map_arrays<2>(
        op.c_str(), {h.array().to(d), u.array().to(d)},
        [&def](auto hb, auto ub) {
            using B = decltype(hb);
            if constexpr (K == 0)
                return hb * as_batch<B>(def->d0(ub));
            else
                return hb * nth_derivative<K>(def->phi, ub);
        },
        def->grain, reuse_u ? 1 : -1);
    if (!record) return Tensor(std::move(r));
    const bool need_h = h.requires_grad();
    const bool need_u = u.requires_grad() && !def->linear_pieces;
    Saved sh(need_u ? h : Tensor(), op.c_str()), su(u, op.c_str());
    return make_result(op.c_str(), std::move(r), {h, u},
                       [def, sh, su, need_h, need_u](const Tensor& gg, const Tensor&) {
                           Tensor gh, gu;
                           if (need_h) gh = chain_op<K>(def, gg, su.get());
                           if (need_u) {
                               if constexpr (K < kMaxChainOrder)
                                   gu = chain_op<K + 1>(def, gg * sh.get(), su.get());
                               else
                                   throw GraphError(def->op_names[K] + ": derivatives of " + def->name +
                                                    " beyond this order are not available (xgrad nests at most " +
                                                    std::to_string(kMaxChainOrder + 1) + " dual numbers)");
                           }
                           return std::vector<Tensor>{gh, gu};
                       });
}

/// True when `a` is a lazily filled constant equal to one (the gradient of a plain sum).
inline bool is_uniform_one(const Array& a) {
    if (!a.is_uniform()) return false;
    return dispatch_floating(a.dtype(), "is_uniform_one",
                             [&]<class T>() { return *static_cast<const T*>(a.uniform_value()) == T(1); });
}

/// g * d for a saved derivative d (not recorded): the backward of a Saves::derivative activation
/// when no graph is being built. The values of chain_op<0>(def, g, x) up to rounding: the compiler
/// may contract a multiply-add of d0 in one inlining context and not in the other. With
/// `last_read_of_d` and nothing else holding d's buffer, the result is written into it, or, when g
/// is a uniform one (the gradient of y.sum()), is d itself: multiplying by one changes no bit, so
/// the node hands its buffer over and the pass reads nothing.
inline Tensor scale_by_saved_derivative(const std::string& op, const Tensor& g, const Array& d, std::int64_t grain,
                                        bool last_read_of_d) {
    require_defined(g, op, "the gradient");
    require_same_shape(g.shape(), d.shape(), op);
    // Decided before the call: its argument list copies d, after which d is no longer unique.
    const int reuse = last_read_of_d && d.unique() ? 1 : -1;
    if (reuse == 1 && g.dtype() == d.dtype() && is_uniform_one(g.array())) return Tensor(d);
    return Tensor(simd_map_arrays<2>(
        op.c_str(), {g.array(), d}, [](auto h, auto u) { return h * u; }, grain, reuse));
}

/// f(v) and f'(v) for the forward pass of an activation that saves its derivative. When d0 is the
/// automatic derivative of f, both come from one dual evaluation (its value part is f's own
/// arithmetic), so f is not evaluated twice; otherwise f and the hand-written d0, which the
/// compiler inlines together and whose common subexpressions it shares (gelu's erfc and exp).
template <class Def, class V>
std::pair<V, V> value_and_derivative(const Def& def, const V& v) {
    if constexpr (is_auto_derivative_v<std::remove_cvref_t<decltype(def.d0)>>) {
        const auto r = def.f(make_variable(v));
        return {value_of<V>(r), tangent<V>(r)};
    } else {
        return {as_batch<V>(def.f(v)), as_batch<V>(def.d0(v))};
    }
}

/// y = f(x) elementwise, recorded with what Def::saves says.
template <class Def>
Tensor elementwise_forward(const std::shared_ptr<const Def>& def, const Tensor& x) {
    const char* op = def->name.c_str();
    require_defined(x, def->name);
    if constexpr (Def::saves == Saves::derivative) {
        if (needs_record({x}) && is_floating(x.dtype())) {
            auto [y, d] = simd_map_value_and_derivative(
                op, x.array(), [&def = *def](auto v) { return value_and_derivative(def, v); }, def->grain);
            Saved sx(x, op);
            return make_result(op, std::move(y), {x},
                               [def, sx, d = std::move(d)](const Tensor& g, const Tensor&, bool last_use) {
                                   const Tensor& xs = sx.get();  // also checks that x was not modified in place
                                   // A graph of the backward (create_graph) needs phi as a function of x.
                                   if (needs_record({g, xs}) || g.dtype() != d.dtype())
                                       return std::vector<Tensor>{chain_op<0>(def, g, xs)};
                                   return std::vector<Tensor>{
                                       scale_by_saved_derivative(def->op_names[0], g, d, kGrainCheap, last_use)};
                               });
        }
    }
    Array y = simd_map_arrays<1, /*RememberSum=*/true>(
        op, {x.array()}, [&f = def->f](auto v) { return f(v); }, def->grain);
    if (!needs_record({x})) return Tensor(std::move(y));
    if constexpr (Def::saves == Saves::output) {
        return make_result(
            op, std::move(y), {x},
            [def](const Tensor& g, const Tensor& out) { return std::vector<Tensor>{chain_op<0>(def, g, out, true)}; },
            true);
    } else {
        Saved sx(x, op);
        return make_result(op, std::move(y), {x}, [def, sx](const Tensor& g, const Tensor&) {
            return std::vector<Tensor>{chain_op<0>(def, g, sx.get())};
        });
    }
}

/// f^(order)(x) elementwise by forward-mode duals of the scalar function f (order 0..2; not recorded).
template <class F>
Tensor automatic_derivative(const F& f, const Tensor& x, int order, const std::string& name) {
    require_defined(x, name);
    const char* op = name.c_str();
    switch (order) {
        case 0:
            return Tensor(simd_map_arrays<1>(
                op, {x.array()}, [&f](auto v) { return f(v); }, kGrainTranscendental));
        case 1:
            return Tensor(simd_map_arrays<1>(
                op, {x.array()}, [&f](auto v) { return derivative(f, v); }, kGrainTranscendental));
        case 2:
            return Tensor(simd_map_arrays<1>(
                op, {x.array()}, [&f](auto v) { return nth_derivative<2>(f, v); }, kGrainTranscendental));
        default:
            throw ValueError(name + ": automatic derivatives are available for orders 0, 1 and 2, not " +
                             std::to_string(order));
    }
}

// --- activations with a parameter tensor: y = f(x, a), a broadcast to x's shape ------------------

/// Name of the op computing h * d^(I+J) f / dx^I da^J: name_backward<order>[_<suffix><J>], where
/// order = I + J + offset is the order of the activation's derivative it computes.
inline std::string param_op_name(const std::string& name, int i, int j, int offset, const std::string& suffix) {
    const int order = i + j + offset;
    std::string s = name + "_backward" + (order > 1 ? std::to_string(order) : std::string());
    if (j > 0) s += "_" + suffix + (j > 1 ? std::to_string(j) : std::string());
    return s;
}

/// A function f(x, a) of a variable and a second tensor, with ops for all its mixed partials: an
/// activation with a parameter tensor (a = the parameter), or the hand-written derivative df(x, y)
/// of a user activation (a = its output y, which the graph differentiates through the forward op).
template <class F>
struct ParamDef {
    std::string name;
    std::array<std::array<std::string, kMaxParamOrder + 1>, kMaxParamOrder + 1> op_names;
    F f;
    std::int64_t grain = kGrainTranscendental;

    ParamDef(std::string n, F f_, std::int64_t grain_ = kGrainTranscendental, int offset = 0,
             const std::string& suffix = "param")
        : name(std::move(n)), f(std::move(f_)), grain(grain_) {
        for (int i = 0; i <= kMaxParamOrder; ++i)
            for (int j = 0; i + j <= kMaxParamOrder; ++j) op_names[i][j] = param_op_name(name, i, j, offset, suffix);
    }
};

template <class F>
std::shared_ptr<const ParamDef<F>> make_param_def(std::string name, F f, std::int64_t grain = kGrainTranscendental,
                                                  int offset = 0, const std::string& suffix = "param") {
    return std::make_shared<const ParamDef<F>>(std::move(name), std::move(f), grain, offset, suffix);
}

/// The parameter's values broadcast to `shape` (kept as one element when it has one).
inline Array param_values(const Tensor& a, const Shape& shape, Dtype d, const std::string& op) {
    Array v = a.array().to(d);
    if (v.numel() == 1 || v.shape() == shape) return v;
    const Shape b = broadcast_shape(v.shape(), shape, op.c_str());
    if (b != shape)
        throw ShapeError(op + ": parameter of shape " + shape_str(v.shape()) +
                         " does not broadcast to the input's shape " + shape_str(shape));
    return engine::broadcast_to(v, shape, op.c_str());
}

/// h * d^(I+J) f(x, a) / dx^I da^J, differentiable in h, x and a.
template <int I, int J, class Def>
Tensor param_op(const std::shared_ptr<const Def>& def, const Tensor& h, const Tensor& x, const Tensor& a) {
    const std::string& op = def->op_names[I][J];
    require_defined(h, op, "the gradient");
    require_same_shape(h, x, op);
    const Dtype d = promote(promote(h.dtype(), x.dtype()), a.dtype());
    require_floating(d, op.c_str());
    Array r = simd_map_arrays<3>(
        op.c_str(), {h.array().to(d), x.array().to(d), param_values(a, x.shape(), d, op)},
        [&f = def->f](auto hb, auto xb, auto ab) { return hb * mixed_partial<I, J>(f, xb, ab); }, def->grain);
    if (!needs_record({h, x, a})) return Tensor(std::move(r));
    const bool need_h = h.requires_grad(), need_x = x.requires_grad(), need_a = a.requires_grad();
    Saved sh(need_x || need_a ? h : Tensor(), op.c_str()), sx(x, op.c_str()), sa(a, op.c_str());
    return make_result(op.c_str(), std::move(r), {h, x, a},
                       [def, sh, sx, sa, need_h, need_x, need_a](const Tensor& gg, const Tensor&) {
                           Tensor gh, gx, ga;
                           if (need_h) gh = param_op<I, J>(def, gg, sx.get(), sa.get());
                           if (need_x || need_a) {
                               if constexpr (I + J < kMaxParamOrder) {
                                   const Tensor hg = gg * sh.get();
                                   if (need_x) gx = param_op<I + 1, J>(def, hg, sx.get(), sa.get());
                                   if (need_a) ga = param_op<I, J + 1>(def, hg, sx.get(), sa.get());
                               } else {
                                   throw GraphError(def->op_names[I][J] + ": derivatives of " + def->name +
                                                    " beyond order " + std::to_string(kMaxParamOrder) +
                                                    " are not available");
                               }
                           }
                           return std::vector<Tensor>{gh, gx, ga};
                       });
}

/// y = f(x, a) elementwise with a broadcast to x's shape; gradients for x and a.
template <class Def>
Tensor param_forward(const std::shared_ptr<const Def>& def, const Tensor& x, const Tensor& a) {
    const std::string& op = def->name;
    require_defined(x, op);
    require_defined(a, op, "the parameter");
    const Dtype d = promote(x.dtype(), a.dtype());
    require_floating(d, op.c_str());
    Array y = simd_map_arrays<2>(
        op.c_str(), {x.array().to(d), param_values(a, x.shape(), d, op)},
        [&f = def->f](auto xb, auto ab) { return f(xb, ab); }, def->grain);
    if (!needs_record({x, a})) return Tensor(std::move(y));
    const bool need_x = x.requires_grad(), need_a = a.requires_grad();
    Saved sx(x, op.c_str()), sa(a, op.c_str());
    return make_result(op.c_str(), std::move(y), {x, a}, [def, sx, sa, need_x, need_a](const Tensor& g, const Tensor&) {
        return std::vector<Tensor>{need_x ? param_op<1, 0>(def, g, sx.get(), sa.get()) : Tensor(),
                                   need_a ? param_op<0, 1>(def, g, sx.get(), sa.get()) : Tensor()};
    });
}

/// y = f(x) for an activation with a hand-written derivative df(x, y): backward is
/// h * df(x, y) (the order-0 op of def, whose function is df), differentiable in h, x and y; the
/// gradient that reaches y flows on through this forward op (PyTorch's sigmoid_backward pattern),
/// so f's own formula is never differentiated.
template <class F, class Def>
Tensor hand_forward(const F& f, const std::shared_ptr<const Def>& def, const Tensor& x) {
    const char* op = def->name.c_str();
    require_defined(x, def->name);
    Array y = simd_map_arrays<1>(
        op, {x.array()}, [&f](auto v) { return f(v); }, def->grain);
    if (!needs_record({x})) return Tensor(std::move(y));
    Saved sx(x, op);
    return make_result(
        op, std::move(y), {x},
        [def, sx](const Tensor& g, const Tensor& out) {
            return std::vector<Tensor>{param_op<0, 0>(def, g, sx.get(), out)};
        },
        true);
}

/// d^order f(x, a) / dx^order elementwise by duals (order 0..2; not recorded).
template <class F>
Tensor automatic_param_derivative(const F& f, const Tensor& x, const Tensor& a, int order, const std::string& name) {
    require_defined(x, name);
    const Dtype d = promote(x.dtype(), a.dtype());
    const std::array<Array, 2> in{x.array().to(d), param_values(a, x.shape(), d, name)};
    const char* op = name.c_str();
    switch (order) {
        case 0:
            return Tensor(simd_map_arrays<2>(
                op, in, [&f](auto v, auto p) { return f(v, p); }, kGrainTranscendental));
        case 1:
            return Tensor(simd_map_arrays<2>(
                op, in, [&f](auto v, auto p) { return mixed_partial<1, 0>(f, v, p); }, kGrainTranscendental));
        case 2:
            return Tensor(simd_map_arrays<2>(
                op, in, [&f](auto v, auto p) { return mixed_partial<2, 0>(f, v, p); }, kGrainTranscendental));
        default:
            throw ValueError(name + ": automatic derivatives are available for orders 0, 1 and 2, not " +
                             std::to_string(order));
    }
}

}  // namespace xg::detail

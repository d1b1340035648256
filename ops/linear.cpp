#include "linear.hpp"

#include <algorithm>

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "fused_activation.hpp"
#include "linalg.hpp"
#include "reduction.hpp"
#include "shape_ops.hpp"

namespace xg {

namespace {
using detail::FusedActivation;
using detail::parallel_for;

template <class T>
void act_forward(const FusedActivation* fa, const T* z, T* y, std::int64_t n) {
    if constexpr (std::is_same_v<T, float>)
        fa->forward_f32(z, y, n);
    else
        fa->forward_f64(z, y, n);
}

template <class T>
void act_backward(const FusedActivation* fa, const T* g, const T* u, T* out, std::int64_t n) {
    if constexpr (std::is_same_v<T, float>)
        fa->backward_f32(g, u, out, n);
    else
        fa->backward_f64(g, u, out, n);
}

// NOTE: the bias is added after the GEMM, in the tile's own pass (still in cache), rather than
// pre-filled for a beta = 1 GEMM: the two measured the same here (784-512 and 512-256 layers at batch
// 128 with relu: 1.46 ms either way, within 1%), and z + b is then rounded exactly as matmul + add.
template <class T>
void forward_kernel(const Array& x, const Array& w, const Array* bias, const FusedActivation* fa, Array& y, Array* z) {
    const std::int64_t m = x.size(0), k = x.size(1), n = w.size(0);
    if (m == 0 || n == 0) return;
    const T* px = x.data<T>();
    const T* pw = w.data<T>();
    const T* pb = bias ? bias->data<T>() : nullptr;
    T* py = y.data<T>();
    T* pz = z ? z->data<T>() : py;  // the GEMM's target: z when the activation's derivative needs it
    detail::ensure_blas_single_threaded();
    const detail::GemmTiling tiling =
        detail::gemm_tiling(m, n, k);  // engine::matmul's tiles: x W^T bit-identical to it
    const std::int64_t tile_m = tiling.tile_m, tile_n = tiling.tile_n, tiles_n = tiling.tiles_n;
    parallel_for(tiling.tiles(), tiling.grain, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t) {
            const std::int64_t r0 = (t / tiles_n) * tile_m, c0 = (t % tiles_n) * tile_n;
            const std::int64_t rows = std::min(tile_m, m - r0), cols = std::min(tile_n, n - c0);
            T* c = pz + r0 * n + c0;
            engine::gemm<T>(false, true, rows, cols, k, px + r0 * k, k, pw + c0 * k, k, c, n);  // zeros when k == 0
            for (std::int64_t i = 0; i < rows; ++i) {
                T* ci = c + i * n;
                if (pb)
                    for (std::int64_t j = 0; j < cols; ++j) ci[j] += pb[c0 + j];
                if (fa) act_forward(fa, ci, py + (r0 + i) * n + c0, cols);
            }
        }
    });
}

// One pass over g [m, n]: gz = g * f'(u) (when fa) and db = column sums of gz (when db). Columns are
// cut into fixed blocks, each summed over the rows in order: deterministic at any thread count.
template <class T>
void backward_pass(const Array& g, const Array* u, const FusedActivation* fa, Array* gz, Array* db) {
    const std::int64_t m = g.size(0), n = g.size(1);
    constexpr std::int64_t kBlock = 256;
    const std::int64_t block = std::min(n, kBlock);
    if (n == 0) return;
    const std::int64_t blocks = (n + block - 1) / block;
    const T* pg = g.data<T>();
    const T* pu = u ? u->data<T>() : nullptr;
    T* pgz = gz ? gz->data<T>() : nullptr;
    T* pdb = db ? db->data<T>() : nullptr;
    const std::int64_t elem_grain = detail::scaled_grain<T>(fa ? detail::kGrainTranscendental : detail::kGrainCheap);
    const std::int64_t grain = std::max<std::int64_t>(1, elem_grain / std::max<std::int64_t>(1, m * block));
    parallel_for(blocks, grain, [&](std::int64_t b0, std::int64_t b1) {
        for (std::int64_t bi = b0; bi < b1; ++bi) {
            const std::int64_t c0 = bi * block, cols = std::min(block, n - c0);
            T* acc = pdb ? pdb + c0 : nullptr;
            if (acc) std::fill(acc, acc + cols, T(0));
            for (std::int64_t i = 0; i < m; ++i) {
                const T* src = pg + i * n + c0;
                if (fa) {
                    T* o = pgz + i * n + c0;
                    act_backward(fa, src, pu + i * n + c0, o, cols);
                    src = o;
                }
                if (acc)
                    for (std::int64_t j = 0; j < cols; ++j) acc[j] += src[j];
            }
        }
    });
}

Tensor linear_2d(const Tensor& X, const Tensor& W, const Tensor& B, const FusedActivation* fa) {
    const Dtype d = X.dtype();
    const std::int64_t m = X.size(0), n = W.size(0);
    const bool keep_z = fa && !fa->saves_output;
    Array y({m, n}, d), z;
    if (keep_z) z = Array({m, n}, d);
    detail::dispatch_floating(d, "linear", [&]<class T>() {
        forward_kernel<T>(X.array(), W.array(), B.defined() ? &B.array() : nullptr, fa, y, keep_z ? &z : nullptr);
    });
    if (!needs_record({X, W, B})) return Tensor(std::move(y));
    const bool nx = X.requires_grad(), nw = W.requires_grad(), nb = B.defined() && B.requires_grad();
    // W for dx, x for dW; all three when z must be recomputed (differentiably) for create_graph.
    Saved sx(nw || keep_z ? X : Tensor(), "linear"), sw(nx || keep_z ? W : Tensor(), "linear");
    Saved sb(keep_z ? B : Tensor(), "linear");
    const char* name = fa ? "linear_act" : "linear";
    return make_result(
        name, std::move(y), {X, W, B},
        [fa, nx, nw, nb, d, n, sx, sw, sb, z](const Tensor& g, const Tensor& out) {
            const Tensor& xv = sx.get();
            const Tensor& wv = sw.get();
            if (needs_record({g, xv, wv, sb.get(), out})) {
                // create_graph: the same gradients as recorded, differentiable ops.
                Tensor gz = g;
                if (fa) gz = fa->backward_op(g, fa->saves_output ? out : linear(xv, wv, sb.get()));
                return std::vector<Tensor>{nx ? matmul_t(gz, wv, false, false) : Tensor(),
                                           nw ? matmul_t(gz, xv, true, false) : Tensor(), nb ? sum(gz, {0}) : Tensor()};
            }
            const Array ga = g.array().to(d);
            Array gz = ga, db;
            Array u;
            if (fa) {
                gz = Array(ga.shape(), d);
                u = fa->saves_output ? out.array() : z;
            }
            if (nb) db = Array({n}, d);
            if (fa || nb)
                detail::dispatch_floating(d, "linear", [&]<class T>() {
                    backward_pass<T>(ga, fa ? &u : nullptr, fa, fa ? &gz : nullptr, nb ? &db : nullptr);
                });
            return std::vector<Tensor>{nx ? Tensor(engine::matmul(gz, wv.array())) : Tensor(),
                                       nw ? Tensor(engine::matmul(gz, xv.array(), true, false)) : Tensor(),
                                       nb ? Tensor(std::move(db)) : Tensor()};
        },
        fa && fa->saves_output);
}
}  // namespace

bool linear_fuses(const std::string& activation) {
    return activation.empty() || detail::fused_activation(activation) != nullptr;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const std::string& activation) {
    if (!x.defined() || !weight.defined()) throw ValueError("linear: the input and the weight must be defined");
    const std::string shapes = "input " + shape_str(x.shape()) + ", weight " + shape_str(weight.shape()) +
                               (bias.defined() ? ", bias " + shape_str(bias.shape()) : std::string());
    if (weight.ndim() != 2) throw ShapeError("linear: weight must be 2-d [out, in]; got " + shapes);
    const std::int64_t out = weight.size(0), in = weight.size(1);
    if (x.ndim() == 0 || x.shape().back() != in)
        throw ShapeError("linear: input must be [..., " + std::to_string(in) + "] to match the weight; got " + shapes);
    if (bias.defined() && (bias.ndim() != 1 || bias.size(0) != out))
        throw ShapeError("linear: bias must be [" + std::to_string(out) + "]; got " + shapes);
    const FusedActivation* fa = nullptr;
    if (!activation.empty() && !(fa = detail::fused_activation(activation)))
        throw ValueError("linear: activation '" + activation +
                         "' cannot be fused (known: relu, sigmoid, tanh, gelu, gelu_tanh, silu)");
    Dtype d = promote(x.dtype(), weight.dtype());
    if (bias.defined()) d = promote(d, bias.dtype());
    if (!is_floating(d))
        throw DtypeError(std::string("linear: expected floating-point tensors (float32 or float64), got ") +
                         dtype_name(d) + " for " + shapes);
    const Tensor X = x.to(d), W = weight.to(d), B = bias.defined() ? bias.to(d) : Tensor();
    if (X.ndim() == 2) return linear_2d(X, W, B, fa);
    Shape out_shape(X.shape().begin(), X.shape().end() - 1);
    std::int64_t rows = 1;
    for (auto s : out_shape) rows *= s;
    out_shape.push_back(out);
    return reshape(linear_2d(reshape(X, {rows, in}), W, B, fa), out_shape);
}

}  // namespace xg

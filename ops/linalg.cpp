#include "linalg.hpp"

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "shape_ops.hpp"

namespace xg {

Tensor matmul_t(const Tensor& a, const Tensor& b, bool ta, bool tb) {
    if (!a.defined() || !b.defined()) throw ValueError("matmul: an operand is undefined");
    const Dtype d = promote(a.dtype(), b.dtype());
    const Tensor A = a.to(d), B = b.to(d);
    Array c = engine::matmul(A.array(), B.array(), ta, tb);
    if (!needs_record({A, B})) return Tensor(std::move(c));
    Saved sa(B.requires_grad() ? A : Tensor(), "matmul"), sb(A.requires_grad() ? B : Tensor(), "matmul");
    return make_result("matmul", std::move(c), {A, B}, [sa, sb, ta, tb](const Tensor& g, const Tensor&) {
        // C = op(A) op(B):  dA = G op(B)^T (transposed back when ta), dB = op(A)^T G (likewise).
        const Tensor& av = sa.get();
        const Tensor& bv = sb.get();
        Tensor ga, gb;
        if (bv.defined()) ga = ta ? matmul_t(bv, g, tb, true) : matmul_t(g, bv, false, !tb);
        if (av.defined()) gb = tb ? matmul_t(g, av, true, ta) : matmul_t(av, g, !ta, false);
        return std::vector<Tensor>{ga, gb};
    });
}

Tensor matmul(const Tensor& a, const Tensor& b) {
    if (!a.defined() || !b.defined()) throw ValueError("matmul: an operand is undefined");
    if (a.ndim() == 0 || b.ndim() == 0)
        throw ShapeError("matmul: both operands need at least 1 dimension, got shapes " + shape_str(a.shape()) +
                         " and " + shape_str(b.shape()));
    const std::int64_t ka = a.shape().back(), kb = b.ndim() == 1 ? b.shape()[0] : b.shape()[b.ndim() - 2];
    if (ka != kb)
        throw ShapeError("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                         " are not compatible (" + std::to_string(ka) + " != " + std::to_string(kb) + ")");
    if (a.ndim() >= 2 && b.ndim() >= 2) return matmul_t(a, b, false, false);
    if (a.ndim() == 1 && b.ndim() == 1) return reshape(matmul_t(unsqueeze(a, 0), unsqueeze(b, 1), false, false), {});
    if (a.ndim() == 1) return squeeze(matmul_t(unsqueeze(a, 0), b, false, false), -2);
    return squeeze(matmul_t(a, unsqueeze(b, 1), false, false), -1);
}

}  // namespace xg

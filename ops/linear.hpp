// ops/: the fused affine layer y = act(x W^T + b): one GEMM whose output tiles get the bias and the
// activation while they are still in cache; backward applies the activation's derivative and sums
// the bias gradient in one pass, then one GEMM for each of dx and dW.
#pragma once
#include <string>

#include "../autograd/tensor.hpp"

namespace xg {

/// PyTorch's F.linear: y = x W^T + b, optionally followed in the same pass by an elementwise
/// activation: y = act(x W^T + b). x [..., in] (1-D gives [out]), weight [out, in], bias [out] or
/// undefined (none); activation "" (none) or one of "relu", "sigmoid", "tanh", "gelu", "gelu_tanh",
/// "silu" (the same function and derivative as the activation op of that name). Differentiable to any
/// order in x, weight and bias. Throws ShapeError naming the shapes, DtypeError for int64 operands,
/// ValueError for an unknown activation.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), const std::string& activation = "");

/// True when linear() can apply `activation` in its own pass ("" included).
bool linear_fuses(const std::string& activation);

}  // namespace xg

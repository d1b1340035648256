// ops/: 2-d convolution and pooling on NCHW tensors. Convolution is im2col + one GEMM; every op
// here is differentiable to any order (im2col and col2im are linear and each other's adjoint).
#pragma once
#include <array>
#include <cstdint>

#include "../autograd/tensor.hpp"

namespace xg {

/// A pair (height, width) of sizes: kernel, stride, padding or dilation.
using Size2 = std::array<std::int64_t, 2>;

/// Output length of a sliding window: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1.
std::int64_t conv_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t padding,
                              std::int64_t dilation);

/// Columns of every window: x [N,C,H,W] -> [C*kh*kw, N*OH*OW]; row (c*kh + i)*kw + j holds tap (i, j)
/// of channel c, column (n*OH + oh)*OW + ow the window at (oh, ow) of image n; taps in the padding
/// read 0. Its gradient is col2im.
Tensor im2col(const Tensor& x, Size2 kernel, Size2 stride = {1, 1}, Size2 padding = {0, 0}, Size2 dilation = {1, 1});
/// Adjoint of im2col: adds every column entry back onto the pixel it was read from, giving an image of
/// shape input_shape [N,C,H,W] (overlapping windows accumulate). Its gradient is im2col.
Tensor col2im(const Tensor& cols, const Shape& input_shape, Size2 kernel, Size2 stride = {1, 1}, Size2 padding = {0, 0},
              Size2 dilation = {1, 1});

/// Cross-correlation as torch.nn.functional.conv2d: x [N,C,H,W], weight [O, C/groups, kh, kw], optional
/// bias [O]; y[n,o] = b[o] + sum_{c in group(o), i, j} w[o,c,i,j] x[n, c, oh*s + i*d - p, ow*s + j*d - p].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), Size2 stride = {1, 1},
              Size2 padding = {0, 0}, Size2 dilation = {1, 1}, std::int64_t groups = 1);

/// Max over each window (padding counts as -inf); stride {0,0} means stride = kernel. The gradient goes
/// to the first maximum of each window (PyTorch's choice), NaN propagates.
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0},
                  Size2 dilation = {1, 1});
/// Mean over each window; stride {0,0} means stride = kernel. With count_include_pad the divisor is
/// kh*kw, otherwise the number of taps inside the image (as PyTorch).
Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0},
                  bool count_include_pad = true);
/// Mean over adaptive bins: output cell (i, j) averages rows [floor(i H/oh), ceil((i+1) H/oh)) and the
/// matching columns (torch.nn.functional.adaptive_avg_pool2d).
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);

}  // namespace xg

// nn/: parameter initializers (in place, under no-grad, from xgrad's seeded generator: call
// xg::manual_seed first for reproducible weights). Named as in torch.nn.init.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "../autograd/tensor.hpp"

namespace xg::nn::init {

/// Which fan kaiming initialisation preserves: the forward (fan_in) or backward (fan_out) variance.
enum class FanMode { fan_in, fan_out };

/// Recommended gain of an activation: linear/identity/conv/sigmoid 1, tanh 5/3, relu sqrt(2),
/// leaky_relu sqrt(2 / (1 + slope^2)) (slope = param), selu 3/4 (PyTorch's table). For any other
/// registered activation f: 1 / sqrt(E[f(z)^2]), z ~ N(0, 1), by quadrature (the gain that keeps
/// the second moment of a unit-variance pre-activation; it gives sqrt(2) for relu).
double calculate_gain(const std::string& nonlinearity, double param = 0.01);
/// (fan_in, fan_out) of a weight: [out, in] for Linear, [out, in/groups, kh, kw] for Conv2d
/// (fan_in = in * kh * kw, fan_out = out * kh * kw).
std::pair<std::int64_t, std::int64_t> fan_in_and_fan_out(const Tensor& w);

/// w ~ U(a, b).
void uniform_(Tensor w, double a = 0.0, double b = 1.0);
/// w ~ N(mean, std^2).
void normal_(Tensor w, double mean = 0.0, double std = 1.0);
/// w = value.
void constant_(Tensor w, double value);
/// w = 0.
void zeros_(Tensor w);
/// w = 1.
void ones_(Tensor w);
/// Glorot: w ~ U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(Tensor w, double gain = 1.0);
/// Glorot: w ~ N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(Tensor w, double gain = 1.0);
/// He: w ~ U(-b, b), b = gain(nonlinearity, a) sqrt(3 / fan).
void kaiming_uniform_(Tensor w, double a = 0.0, FanMode mode = FanMode::fan_in,
                      const std::string& nonlinearity = "leaky_relu");
/// He: w ~ N(0, std^2), std = gain(nonlinearity, a) / sqrt(fan).
void kaiming_normal_(Tensor w, double a = 0.0, FanMode mode = FanMode::fan_in,
                     const std::string& nonlinearity = "leaky_relu");

}  // namespace xg::nn::init

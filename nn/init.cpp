#include "init.hpp"

#include <cmath>
#include <map>
#include <mutex>

#include "../engine/error.hpp"
#include "../ops/activation_registry.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/math.hpp"
#include "../ops/reduction.hpp"

namespace xg::nn::init {

namespace {
void check(const Tensor& w, const char* op) {
    if (!w.defined()) throw ValueError(std::string(op) + ": the tensor is undefined");
    if (!is_floating(w.dtype()))
        throw DtypeError(std::string(op) + ": expected a floating tensor, got " + dtype_name(w.dtype()));
}

// 1 / sqrt(E[f(z)^2]) for z ~ N(0,1): trapezoid rule on [-10, 10], exact to ~1e-10 for smooth f.
double moment_gain(const std::string& name) {
    static std::mutex m;
    static std::map<std::string, double> cache;
    std::lock_guard<std::mutex> lock(m);
    if (auto it = cache.find(name); it != cache.end()) return it->second;
    const auto f = get_activation(name);
    NoGradGuard ng;
    const std::int64_t n = 20001;
    const Tensor z = linspace(-10.0, 10.0, n, Dtype::f64);
    const double h = 20.0 / static_cast<double>(n - 1);
    const Tensor density = exp(z * z * -0.5) / std::sqrt(2.0 * M_PI);
    const Tensor fz = f(z).to(Dtype::f64);
    const double second = sum(fz * fz * density).item<double>() * h;
    if (!(second > 0) || !std::isfinite(second))
        throw ValueError("calculate_gain: activation '" + name + "' has no finite positive second moment on N(0,1)");
    return cache[name] = 1.0 / std::sqrt(second);
}
}  // namespace

double calculate_gain(const std::string& nl, double param) {
    if (nl == "linear" || nl == "identity" || nl == "sigmoid" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d")
        return 1.0;
    if (nl == "tanh") return 5.0 / 3.0;
    if (nl == "relu") return std::sqrt(2.0);
    if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
    if (nl == "selu") return 0.75;
    if (!has_activation(nl))
        throw ValueError("calculate_gain: unknown nonlinearity '" + nl + "' (not in the activation registry)");
    return moment_gain(nl);
}

std::pair<std::int64_t, std::int64_t> fan_in_and_fan_out(const Tensor& w) {
    if (!w.defined() || w.ndim() < 2)
        throw ShapeError("fan_in_and_fan_out: need a tensor with at least 2 dimensions, got shape " +
                         (w.defined() ? shape_str(w.shape()) : std::string("undefined")));
    std::int64_t receptive = 1;
    for (std::size_t i = 2; i < w.ndim(); ++i) receptive *= w.shape()[i];
    return {w.shape()[1] * receptive, w.shape()[0] * receptive};
}

void uniform_(Tensor w, double a, double b) {
    check(w, "uniform_");
    NoGradGuard ng;
    w.copy_(uniform(w.shape(), a, b, w.dtype()));
}

void normal_(Tensor w, double mean, double std) {
    check(w, "normal_");
    NoGradGuard ng;
    w.copy_(normal(w.shape(), mean, std, w.dtype()));
}

void constant_(Tensor w, double value) {
    check(w, "constant_");
    NoGradGuard ng;
    w.fill_(value);
}
void zeros_(Tensor w) { constant_(std::move(w), 0.0); }
void ones_(Tensor w) { constant_(std::move(w), 1.0); }

void xavier_uniform_(Tensor w, double gain) {
    const auto [fi, fo] = fan_in_and_fan_out(w);
    const double a = gain * std::sqrt(6.0 / static_cast<double>(fi + fo));
    uniform_(std::move(w), -a, a);
}

void xavier_normal_(Tensor w, double gain) {
    const auto [fi, fo] = fan_in_and_fan_out(w);
    normal_(std::move(w), 0.0, gain * std::sqrt(2.0 / static_cast<double>(fi + fo)));
}

namespace {
double kaiming_std(const Tensor& w, double a, FanMode mode, const std::string& nl) {
    const auto [fi, fo] = fan_in_and_fan_out(w);
    const std::int64_t fan = mode == FanMode::fan_in ? fi : fo;
    if (fan == 0) throw ShapeError("kaiming init: zero fan for shape " + shape_str(w.shape()));
    return calculate_gain(nl, a) / std::sqrt(static_cast<double>(fan));
}
}  // namespace

void kaiming_uniform_(Tensor w, double a, FanMode mode, const std::string& nl) {
    const double bound = std::sqrt(3.0) * kaiming_std(w, a, mode, nl);
    uniform_(std::move(w), -bound, bound);
}

void kaiming_normal_(Tensor w, double a, FanMode mode, const std::string& nl) {
    const double s = kaiming_std(w, a, mode, nl);
    normal_(std::move(w), 0.0, s);
}

}  // namespace xg::nn::init

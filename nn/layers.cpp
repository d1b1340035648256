#include "layers.hpp"

#include <cmath>
#include <sstream>
#include <typeinfo>

#include "../engine/error.hpp"
#include "../ops/arithmetic.hpp"
#include "../ops/factories.hpp"
#include "../ops/linalg.hpp"
#include "../ops/linear.hpp"
#include "../ops/math.hpp"
#include "../ops/reduction.hpp"
#include "../ops/shape_ops.hpp"
#include "init.hpp"

namespace xg::nn {

namespace {
std::string size2_str(Size2 s) {
    std::string r = "(";
    r += std::to_string(s[0]);
    r += ", ";
    r += std::to_string(s[1]);
    r += ')';
    return r;
}
const char* bool_str(bool b) { return b ? "true" : "false"; }
}  // namespace

// --- Linear ---------------------------------------------------------------------------------------
Linear::Linear(std::int64_t in, std::int64_t out, bool with_bias, Dtype dtype)
    : Module("Linear"), in_features(in), out_features(out) {
    if (in <= 0 || out <= 0)
        throw ValueError("Linear: in_features and out_features must be positive, got " + std::to_string(in) + " and " +
                         std::to_string(out));
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    weight = uniform({out, in}, -bound, bound, dtype);
    register_parameter("weight", weight);
    if (with_bias) {
        bias = uniform({out}, -bound, bound, dtype);
        register_parameter("bias", bias);
    }
}

Tensor Linear::forward(const Tensor& x) { return forward_fused(x, ""); }

Tensor Linear::forward_fused(const Tensor& x, const std::string& activation) {
    if (!x.defined() || x.ndim() == 0 || x.shape().back() != in_features)
        throw ShapeError("Linear: expected input [..., " + std::to_string(in_features) + "], got " +
                         (x.defined() ? shape_str(x.shape()) : std::string("undefined")));
    return linear(x, weight, bias, activation);
}

std::string Linear::extra_repr() const {
    return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
           ", bias=" + bool_str(bias.defined());
}

// --- Sequential -----------------------------------------------------------------------------------
Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) : Module("Sequential") {
    for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> module) {
    register_module(std::to_string(modules_.size()), module);
    modules_.push_back(std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
    Tensor y = x;
    for (std::size_t i = 0; i < modules_.size(); ++i) {
        Module& m = *modules_[i];
        if (i + 1 < modules_.size() && typeid(m) == typeid(Linear) && !m.has_forward_hooks()) {
            const auto* act = dynamic_cast<const Activation*>(modules_[i + 1].get());
            if (act && act->fusable() && !act->has_forward_hooks()) {
                y = static_cast<Linear&>(m).forward_fused(y, act->name());
                ++i;
                continue;
            }
        }
        y = m(y);
    }
    return y;
}

// --- Activation -----------------------------------------------------------------------------------
Activation::Activation(const std::string& name) : Module("Activation"), name_(name), fn_(get_activation(name)) {
    // A user may have registered another function under a built-in's name: fuse only the built-in
    // (its registry entry is elementwise with the hand-written derivative).
    if (linear_fuses(name) && !name.empty()) {
        const ActivationInfo info = activation_info(name);
        fusable_ = info.elementwise && info.hand_written;
    }
}

Activation::Activation(const std::string& name, ActivationFn fn)
    : Module("Activation"), name_(name), fn_(std::move(fn)) {
    if (!fn_) throw ValueError("Activation: the function of '" + name + "' is empty");
}

Tensor Activation::forward(const Tensor& x) { return fn_(x); }

// --- Dropout --------------------------------------------------------------------------------------
Dropout::Dropout(double p_) : Module("Dropout"), p(p_) {
    if (!(p >= 0.0 && p <= 1.0)) throw ValueError("Dropout: p must be in [0, 1], got " + std::to_string(p));
}

Tensor Dropout::forward(const Tensor& x) {
    if (!is_training() || p == 0.0) return x;
    if (p == 1.0) return x * zeros_like(x);
    Tensor mask;
    {
        NoGradGuard ng;
        mask = ge(rand(x.shape(), x.dtype()), scalar(p, x.dtype())) * (1.0 / (1.0 - p));
    }
    return x * mask;
}

std::string Dropout::extra_repr() const {
    std::ostringstream os;
    os << "p=" << p;
    return os.str();
}

// --- Flatten --------------------------------------------------------------------------------------
Flatten::Flatten(std::int64_t s, std::int64_t e) : Module("Flatten"), start_dim(s), end_dim(e) {}

Tensor Flatten::forward(const Tensor& x) { return flatten(x, start_dim, end_dim); }

std::string Flatten::extra_repr() const {
    return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

// --- LayerNorm ------------------------------------------------------------------------------------
LayerNorm::LayerNorm(Shape shape, double eps_, bool affine, Dtype dtype)
    : Module("LayerNorm"), normalized_shape(std::move(shape)), eps(eps_) {
    if (normalized_shape.empty()) throw ValueError("LayerNorm: normalized_shape must not be empty");
    if (affine) {
        weight = ones(normalized_shape, dtype);
        bias = zeros(normalized_shape, dtype);
        register_parameter("weight", weight);
        register_parameter("bias", bias);
    }
}

Tensor LayerNorm::forward(const Tensor& x) {
    const std::size_t k = normalized_shape.size();
    if (!x.defined() || x.ndim() < k ||
        !std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - static_cast<std::ptrdiff_t>(k)))
        throw ShapeError("LayerNorm: input " + (x.defined() ? shape_str(x.shape()) : std::string("undefined")) +
                         " does not end with normalized_shape " + shape_str(normalized_shape));
    Axes axes;
    for (std::size_t i = 0; i < k; ++i) axes.push_back(-static_cast<std::int64_t>(i) - 1);
    const Tensor m = mean(x, axes, true);
    const Tensor centered = x - m;
    Tensor y = centered * rsqrt(mean(square(centered), axes, true) + eps);
    return weight.defined() ? y * weight + bias : y;
}

std::string LayerNorm::extra_repr() const {
    std::ostringstream os;
    os << "normalized_shape=" << shape_str(normalized_shape) << ", eps=" << eps
       << ", elementwise_affine=" << bool_str(weight.defined());
    return os.str();
}

// --- BatchNorm ------------------------------------------------------------------------------------
BatchNorm::BatchNorm(const std::string& type, std::int64_t n, double eps_, double momentum_, bool affine, Dtype dtype)
    : Module(type), num_features(n), eps(eps_), momentum(momentum_) {
    if (n <= 0) throw ValueError(type + ": num_features must be positive, got " + std::to_string(n));
    if (affine) {
        weight = ones({n}, dtype);
        bias = zeros({n}, dtype);
        register_parameter("weight", weight);
        register_parameter("bias", bias);
    }
    running_mean = zeros({n}, dtype);
    running_var = ones({n}, dtype);
    num_batches_tracked = zeros({}, Dtype::i64);
    register_buffer("running_mean", running_mean);
    register_buffer("running_var", running_var);
    register_buffer("num_batches_tracked", num_batches_tracked);
}

Tensor BatchNorm::forward(const Tensor& x) {
    check_input(x);
    if (x.size(1) != num_features)
        throw ShapeError(type_name() + ": expected " + std::to_string(num_features) + " channels, got input " +
                         shape_str(x.shape()));
    Axes axes{0};
    Shape bshape(x.ndim(), 1);
    bshape[1] = num_features;
    for (std::size_t i = 2; i < x.ndim(); ++i) axes.push_back(static_cast<std::int64_t>(i));
    Tensor y;
    if (is_training()) {
        const std::int64_t count = x.numel() / num_features;
        if (count <= 1)
            throw ValueError(type_name() + ": need more than 1 value per channel in training, got input " +
                             shape_str(x.shape()));
        const Tensor m = mean(x, axes, true);
        const Tensor centered = x - m;
        const Tensor v = mean(square(centered), axes, true);  // biased, for normalising
        {
            NoGradGuard ng;
            const double c = static_cast<double>(count);
            running_mean.mul_(1.0 - momentum).add_(reshape(m.detach(), {num_features}), momentum);
            running_var.mul_(1.0 - momentum).add_(reshape(v.detach(), {num_features}) * (c / (c - 1.0)), momentum);
            num_batches_tracked.add_(ones({}, Dtype::i64));
        }
        y = centered * rsqrt(v + eps);
    } else {
        y = (x - reshape(running_mean, bshape)) * rsqrt(reshape(running_var, bshape) + eps);
    }
    if (weight.defined()) y = y * reshape(weight, bshape) + reshape(bias, bshape);
    return y;
}

std::string BatchNorm::extra_repr() const {
    std::ostringstream os;
    os << num_features << ", eps=" << eps << ", momentum=" << momentum << ", affine=" << bool_str(weight.defined());
    return os.str();
}

void BatchNorm1d::check_input(const Tensor& x) const {
    if (!x.defined() || (x.ndim() != 2 && x.ndim() != 3))
        throw ShapeError("BatchNorm1d: expected input [N, C] or [N, C, L], got " +
                         (x.defined() ? shape_str(x.shape()) : std::string("undefined")));
}

void BatchNorm2d::check_input(const Tensor& x) const {
    if (!x.defined() || x.ndim() != 4)
        throw ShapeError("BatchNorm2d: expected input [N, C, H, W], got " +
                         (x.defined() ? shape_str(x.shape()) : std::string("undefined")));
}

// --- Embedding ------------------------------------------------------------------------------------
Embedding::Embedding(std::int64_t n, std::int64_t dim, Dtype dtype)
    : Module("Embedding"), num_embeddings(n), embedding_dim(dim) {
    if (n <= 0 || dim <= 0) throw ValueError("Embedding: sizes must be positive");
    weight = randn({n, dim}, dtype);
    register_parameter("weight", weight);
}

Tensor Embedding::forward(const Tensor& indices) {
    if (!indices.defined() || indices.dtype() != Dtype::i64)
        throw DtypeError("Embedding: indices must be an int64 tensor");
    {
        const auto v = indices.to_vector<std::int64_t>();
        for (auto i : v)
            if (i < 0 || i >= num_embeddings)
                throw IndexError("Embedding: index " + std::to_string(i) + " is out of range for " +
                                 std::to_string(num_embeddings) + " embeddings");
    }
    Shape out = indices.shape();
    out.push_back(embedding_dim);
    return reshape(index_select(weight, 0, reshape(indices, {indices.numel()})), out);
}

std::string Embedding::extra_repr() const {
    return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim);
}

// --- Conv2d ---------------------------------------------------------------------------------------
Conv2d::Conv2d(std::int64_t in, std::int64_t out, Size2 k, Conv2dOptions opt, Dtype dtype)
    : Module("Conv2d"), in_channels(in), out_channels(out), kernel_size(k), options(opt) {
    if (in <= 0 || out <= 0 || k[0] <= 0 || k[1] <= 0 || opt.groups <= 0 || in % opt.groups || out % opt.groups)
        throw ValueError("Conv2d: channels " + std::to_string(in) + " -> " + std::to_string(out) + ", kernel " +
                         size2_str(k) + ", groups " + std::to_string(opt.groups) +
                         ": sizes must be positive and channels divisible by groups");
    const std::int64_t fan_in = in / opt.groups * k[0] * k[1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    weight = uniform({out, in / opt.groups, k[0], k[1]}, -bound, bound, dtype);
    register_parameter("weight", weight);
    if (opt.bias) {
        bias = uniform({out}, -bound, bound, dtype);
        register_parameter("bias", bias);
    }
}

Tensor Conv2d::forward(const Tensor& x) {
    return conv2d(x, weight, bias, options.stride, options.padding, options.dilation, options.groups);
}

std::string Conv2d::extra_repr() const {
    std::string s = std::to_string(in_channels) + ", " + std::to_string(out_channels) +
                    ", kernel_size=" + size2_str(kernel_size) + ", stride=" + size2_str(options.stride);
    if (options.padding != Size2{0, 0}) s += ", padding=" + size2_str(options.padding);
    if (options.dilation != Size2{1, 1}) s += ", dilation=" + size2_str(options.dilation);
    if (options.groups != 1) s += ", groups=" + std::to_string(options.groups);
    if (!bias.defined()) s += ", bias=false";
    return s;
}

// --- pooling --------------------------------------------------------------------------------------
MaxPool2d::MaxPool2d(Size2 k, Size2 s, Size2 p, Size2 d)
    : Module("MaxPool2d"), kernel_size(k), stride(s[0] == 0 && s[1] == 0 ? k : s), padding(p), dilation(d) {}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel_size, stride, padding, dilation); }

std::string MaxPool2d::extra_repr() const {
    std::string s = "kernel_size=" + size2_str(kernel_size) + ", stride=" + size2_str(stride);
    if (padding != Size2{0, 0}) s += ", padding=" + size2_str(padding);
    if (dilation != Size2{1, 1}) s += ", dilation=" + size2_str(dilation);
    return s;
}

AvgPool2d::AvgPool2d(Size2 k, Size2 s, Size2 p, bool cip)
    : Module("AvgPool2d"), kernel_size(k), stride(s[0] == 0 && s[1] == 0 ? k : s), padding(p), count_include_pad(cip) {}

Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, kernel_size, stride, padding, count_include_pad); }

std::string AvgPool2d::extra_repr() const {
    std::string s = "kernel_size=" + size2_str(kernel_size) + ", stride=" + size2_str(stride);
    if (padding != Size2{0, 0})
        s += ", padding=" + size2_str(padding) + ", count_include_pad=" + bool_str(count_include_pad);
    return s;
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 out) : Module("AdaptiveAvgPool2d"), output_size(out) {}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size); }

std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + size2_str(output_size); }

}  // namespace xg::nn

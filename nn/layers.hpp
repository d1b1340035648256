// nn/: layers. Each is a small graph program on public ops; parameters are public members.
// Default initialisation follows PyTorch (Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "../ops/activation_registry.hpp"
#include "../ops/conv.hpp"
#include "module.hpp"

namespace xg::nn {

/// y = x W^T + b; W [out, in], b [out]; x [..., in]. One fused op (xg::linear).
class Linear : public Module {
public:
    Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true, Dtype dtype = Dtype::f32);
    Tensor forward(const Tensor& x) override;
    /// act(x W^T + b) in one pass (xg::linear with a fusable activation name, see linear_fuses).
    Tensor forward_fused(const Tensor& x, const std::string& activation);
    std::string extra_repr() const override;
    std::int64_t in_features, out_features;
    Tensor weight, bias;
};

/// Runs its submodules in order; they are named "0", "1", ... A Linear directly followed by an
/// Activation that xg::linear can fuse (relu, sigmoid, tanh, gelu, gelu_tanh, silu; neither with a
/// forward hook) runs as one fused call; modules and state_dict names are unchanged.
class Sequential : public Module {
public:
    Sequential() : Module("Sequential") {}
    Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
    /// Appends a module.
    void push_back(std::shared_ptr<Module> module);
    Tensor forward(const Tensor& x) override;
    std::size_t size() const { return modules_.size(); }
    /// The i-th module.
    std::shared_ptr<Module> operator[](std::size_t i) const { return modules_.at(i); }

private:
    std::vector<std::shared_ptr<Module>> modules_;
};

/// Any elementwise activation: by name from the registry (built-in or registered by the user),
/// or a function given with its name.
class Activation : public Module {
public:
    /// The registered activation `name` (throws ValueError listing the known names).
    explicit Activation(const std::string& name);
    /// A user function, shown and looked up (e.g. for its init gain) as `name`.
    Activation(const std::string& name, ActivationFn fn);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override { return name_; }
    const std::string& name() const { return name_; }
    const ActivationFn& function() const { return fn_; }
    /// True when this is a built-in activation taken from the registry that xg::linear can apply in
    /// its own pass (Sequential then fuses it into the preceding Linear).
    bool fusable() const { return fusable_; }

private:
    std::string name_;
    ActivationFn fn_;
    bool fusable_ = false;
};

/// In training, zeroes each element with probability p and scales the rest by 1/(1-p); identity in eval.
class Dropout : public Module {
public:
    explicit Dropout(double p = 0.5);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    double p;
};

/// Flattens dimensions start..end (default: all but the batch dimension).
class Flatten : public Module {
public:
    explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    std::int64_t start_dim, end_dim;
};

/// y = (x - mean) / sqrt(var + eps) * weight + bias over the last dims of shape normalized_shape
/// (biased variance, as PyTorch).
class LayerNorm : public Module {
public:
    explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true,
                       Dtype dtype = Dtype::f32);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    Shape normalized_shape;
    double eps;
    Tensor weight, bias;
};

/// Batch normalisation over channel axis 1: training uses the batch statistics (biased variance) and
/// updates running_mean / running_var (unbiased) with `momentum`; eval uses the running statistics.
class BatchNorm : public Module {
public:
    /// Normalises x [N, C, ...]; the subclasses fix the accepted ranks.
    BatchNorm(const std::string& type, std::int64_t num_features, double eps, double momentum, bool affine,
              Dtype dtype);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    std::int64_t num_features;
    double eps, momentum;
    Tensor weight, bias, running_mean, running_var, num_batches_tracked;

protected:
    virtual void check_input(const Tensor& x) const = 0;
};

/// BatchNorm over [N, C] or [N, C, L].
class BatchNorm1d : public BatchNorm {
public:
    explicit BatchNorm1d(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                         Dtype dtype = Dtype::f32)
        : BatchNorm("BatchNorm1d", num_features, eps, momentum, affine, dtype) {}

protected:
    void check_input(const Tensor& x) const override;
};

/// BatchNorm over [N, C, H, W].
class BatchNorm2d : public BatchNorm {
public:
    explicit BatchNorm2d(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                         Dtype dtype = Dtype::f32)
        : BatchNorm("BatchNorm2d", num_features, eps, momentum, affine, dtype) {}

protected:
    void check_input(const Tensor& x) const override;
};

/// A lookup table: int64 indices of any shape -> rows of weight [num_embeddings, embedding_dim] (init N(0,1)).
class Embedding : public Module {
public:
    Embedding(std::int64_t num_embeddings, std::int64_t embedding_dim, Dtype dtype = Dtype::f32);
    Tensor forward(const Tensor& indices) override;
    std::string extra_repr() const override;
    std::int64_t num_embeddings, embedding_dim;
    Tensor weight;
};

/// Options of Conv2d beyond channels and kernel.
struct Conv2dOptions {
    Size2 stride{1, 1};
    Size2 padding{0, 0};
    Size2 dilation{1, 1};
    std::int64_t groups = 1;
    bool bias = true;
};

/// 2-d convolution (cross-correlation) of x [N, C, H, W]: weight [O, C/groups, kh, kw], bias [O].
class Conv2d : public Module {
public:
    Conv2d(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size, Conv2dOptions options = {},
           Dtype dtype = Dtype::f32);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    std::int64_t in_channels, out_channels;
    Size2 kernel_size;
    Conv2dOptions options;
    Tensor weight, bias;
};

/// Max pooling (stride defaults to the kernel size).
class MaxPool2d : public Module {
public:
    explicit MaxPool2d(Size2 kernel_size, Size2 stride = {0, 0}, Size2 padding = {0, 0}, Size2 dilation = {1, 1});
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    Size2 kernel_size, stride, padding, dilation;
};

/// Average pooling (stride defaults to the kernel size).
class AvgPool2d : public Module {
public:
    explicit AvgPool2d(Size2 kernel_size, Size2 stride = {0, 0}, Size2 padding = {0, 0}, bool count_include_pad = true);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    Size2 kernel_size, stride, padding;
    bool count_include_pad;
};

/// Average pooling to a fixed output size.
class AdaptiveAvgPool2d : public Module {
public:
    explicit AdaptiveAvgPool2d(Size2 output_size);
    Tensor forward(const Tensor& x) override;
    std::string extra_repr() const override;
    Size2 output_size;
};

}  // namespace xg::nn

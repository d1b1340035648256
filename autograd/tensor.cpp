#include "tensor.hpp"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"
#include "node.hpp"

namespace xg {

namespace {
thread_local bool t_grad_enabled = true;

TensorImpl& impl_of(const std::shared_ptr<TensorImpl>& p, const char* what) {
    if (!p) throw ValueError(std::string(what) + ": the tensor is undefined");
    return *p;
}
}  // namespace

bool is_grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { t_grad_enabled = prev_; }

Tensor::Tensor(Array value, bool requires_grad) : impl_(detail::make_pooled<TensorImpl>()) {
    impl_->value = std::move(value);
    if (requires_grad) requires_grad_(true);
}

const Array& Tensor::array() const { return impl_of(impl_, "array").value; }

template <class T>
T Tensor::item() const {
    const Array& a = array();
    if (a.numel() != 1)
        throw ValueError("item: a tensor with " + std::to_string(a.numel()) + " elements (shape " +
                         shape_str(a.shape()) + ") cannot be converted to a scalar");
    return detail::dispatch(a.dtype(), "item", [&]<class S>() { return static_cast<T>(a.data<S>()[0]); });
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template std::int64_t Tensor::item<std::int64_t>() const;
template int Tensor::item<int>() const;

template <class T>
std::vector<T> Tensor::to_vector() const {
    const Array& a = array();
    std::vector<T> r(static_cast<std::size_t>(a.numel()));
    detail::dispatch(a.dtype(), "to_vector", [&]<class S>() {
        const S* p = a.data<S>();
        for (std::int64_t i = 0; i < a.numel(); ++i) r[i] = static_cast<T>(p[i]);
    });
    return r;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;
template std::vector<int> Tensor::to_vector<int>() const;

Tensor& Tensor::requires_grad_(bool requires_grad) {
    auto& impl = impl_of(impl_, "requires_grad_");
    if (requires_grad && !is_floating(impl.value.dtype()))
        throw DtypeError(std::string("requires_grad_: only floating-point tensors can require gradients, got ") +
                         dtype_name(impl.value.dtype()) + " tensor of shape " + shape_str(impl.value.shape()));
    if (impl.grad_fn) {
        // A non-leaf already requires grad (as PyTorch: only turning it off is an error).
        if (requires_grad) return *this;
        throw GraphError("requires_grad_: can only turn off requires_grad of leaf tensors; this one was produced by " +
                         impl.grad_fn->name() + " (use detach())");
    }
    impl.requires_grad = requires_grad;
    return *this;
}

bool Tensor::requires_grad() const { return impl_ && (impl_->requires_grad || impl_->grad_fn); }
Tensor Tensor::grad() const { return impl_of(impl_, "grad").grad; }
void Tensor::set_grad(const Tensor& grad) {
    if (grad.defined() && grad.shape() != shape())
        throw ShapeError("set_grad: gradient of shape " + shape_str(grad.shape()) + " for a tensor of shape " +
                         shape_str(shape()));
    if (grad.defined() && grad.dtype() != dtype())
        throw DtypeError(std::string("set_grad: gradient of dtype ") + dtype_name(grad.dtype()) + " for a " +
                         dtype_name(dtype()) + " tensor");
    impl_of(impl_, "set_grad").grad = grad;
}
void Tensor::zero_grad() { impl_of(impl_, "zero_grad").grad = Tensor(); }
Tensor Tensor::detach() const { return Tensor(array(), false); }
bool Tensor::is_leaf() const { return !impl_of(impl_, "is_leaf").grad_fn; }

void Tensor::retain_grad() {
    auto& impl = impl_of(impl_, "retain_grad");
    if (!requires_grad()) throw GraphError("retain_grad: called on a tensor that does not require grad");
    impl.retains_grad = true;
    if (impl.grad_fn) {
        impl.grad_fn->extras().retain_target = impl_;
        impl.grad_fn->has_hooks_ = true;
    }
}
bool Tensor::retains_grad() const { return impl_ && impl_->retains_grad; }
std::string Tensor::grad_fn_name() const { return impl_ && impl_->grad_fn ? impl_->grad_fn->name() : std::string(); }
std::shared_ptr<Node> Tensor::grad_fn() const { return impl_ ? impl_->grad_fn : nullptr; }

std::size_t Tensor::register_hook(std::function<Tensor(const Tensor&)> hook) {
    auto& impl = impl_of(impl_, "register_hook");
    if (!requires_grad())
        throw GraphError("register_hook: cannot register a hook on a tensor that does not require grad");
    if (impl.grad_fn) {
        auto& hooks = impl.grad_fn->extras().pre_hooks;
        hooks.push_back(std::move(hook));
        impl.grad_fn->has_hooks_ = true;
        return hooks.size() - 1;
    }
    auto& hooks = impl.leaf().hooks;
    hooks.push_back(std::move(hook));
    return hooks.size() - 1;
}

// --- in-place ------------------------------------------------------------------------------------
namespace {

void check_inplace(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": the tensor is undefined");
    if (is_grad_enabled() && t.requires_grad())
        throw GraphError(std::string(op) + ": in-place update of a tensor that requires grad (shape " +
                         shape_str(t.shape()) + ") while grad mode is on; wrap it in xg::NoGradGuard");
}

// self = f(self, other) elementwise, other broadcast to self's shape and cast to its dtype.
template <class F>
void inplace_binary(Tensor& self, const Tensor& other, const char* op, F f) {
    check_inplace(self, op);
    Array& dst = self.impl()->value;
    Array src = other.array().to(dst.dtype());
    const Shape b = broadcast_shape(dst.shape(), src.shape(), op);
    if (b != dst.shape())
        throw ShapeError(std::string(op) + ": cannot update a tensor of shape " + shape_str(dst.shape()) +
                         " with one of shape " + shape_str(src.shape()));
    detail::dispatch(dst.dtype(), op, [&]<class T>() {
        if (src.shares_storage(dst)) src = src.clone();
        detail::binary_broadcast<T, T>(dst, src, dst, [&](T a, T c) { return static_cast<T>(f(a, c)); });
    });
    dst.bump_version();
}

}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) {
    inplace_binary(*this, other, "add_", [alpha](auto a, auto b) { return a + static_cast<decltype(a)>(alpha) * b; });
    return *this;
}
Tensor& Tensor::sub_(const Tensor& other, double alpha) {
    inplace_binary(*this, other, "sub_", [alpha](auto a, auto b) { return a - static_cast<decltype(a)>(alpha) * b; });
    return *this;
}
Tensor& Tensor::mul_(const Tensor& other) {
    inplace_binary(*this, other, "mul_", [](auto a, auto b) { return a * b; });
    return *this;
}
Tensor& Tensor::mul_(double value) { return mul_(Tensor(engine::full({}, dtype(), value))); }
Tensor& Tensor::zero_() { return fill_(0.0); }
Tensor& Tensor::fill_(double value) {
    inplace_binary(*this, Tensor(engine::full({}, dtype(), value)), "fill_", [](auto, auto b) { return b; });
    return *this;
}
Tensor& Tensor::copy_(const Tensor& other) {
    inplace_binary(*this, other, "copy_", [](auto, auto b) { return b; });
    return *this;
}

// --- printing --------------------------------------------------------------------------------------
namespace {

void print_values(std::ostream& os, const Array& a, std::size_t dim, std::int64_t offset, const Shape& strides,
                  int indent) {
    const std::int64_t n = a.shape()[dim];
    const bool elide = a.numel() > 1000 && n > 6;
    os << "[";
    for (std::int64_t i = 0; i < n; ++i) {
        if (elide && i == 3) {
            os << "...";
            i = n - 3;
            os << (dim + 1 == a.ndim() ? ", " : ",\n" + std::string(indent + 1, ' '));
        }
        if (dim + 1 == a.ndim()) {
            detail::dispatch(a.dtype(), "print", [&]<class T>() { os << a.data<T>()[offset + i * strides[dim]]; });
        } else {
            print_values(os, a, dim + 1, offset + i * strides[dim], strides, indent + 1);
        }
        if (i + 1 < n) os << (dim + 1 == a.ndim() ? ", " : ",\n" + std::string(indent + 1, ' '));
    }
    os << "]";
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
    if (!t.defined()) return os << "tensor(undefined)";
    const Array& a = t.array();
    std::ostringstream body;
    body << std::setprecision(a.dtype() == Dtype::f64 ? 8 : 4);
    if (a.ndim() == 0)
        detail::dispatch(a.dtype(), "print", [&]<class T>() { body << a.data<T>()[0]; });
    else if (a.numel() == 0)
        body << "[]";
    else
        print_values(body, a, 0, 0, contiguous_strides(a.shape()), 7);
    os << "tensor(" << body.str() << ", shape=" << shape_str(a.shape()) << ", dtype=" << dtype_name(a.dtype());
    if (t.grad_fn())
        os << ", grad_fn=<" << t.grad_fn_name() << ">";
    else if (t.requires_grad())
        os << ", requires_grad=true";
    return os << ")";
}

}  // namespace xg

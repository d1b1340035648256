// ops/: user-defined activations from one generic lambda written with xg's scalar math
// (ops/scalar_math.hpp). The lambda is instantiated for xsimd batches (the forward kernel) and
// for forward-mode duals of batches (the derivatives), so the result is a vectorised, TBB-parallel
// op with derivatives of every order up to the dual nesting depth - no hand-written derivative.
//
//     auto swish = xg::activation("swish", [](auto x) { return x * xg::sigmoid(x); });
//     xg::Tensor y = swish(x);                      // grad_fn_name() == "swish"
//     xg::register_activation(swish);               // now get_activation("swish") and the lab know it
//
//     // With a hand-written derivative df(x, y) (y = f(x)); the lab cross-checks it:
//     auto sig = xg::activation("sigmoid2", [](auto x) { return 1 / (1 + xg::exp(-x)); },
//                               [](auto x, auto y) { return y * (1 - y); });
//
//     // With a parameter tensor a (broadcast to x): gradients for x and a.
//     auto pswish = xg::activation("pswish", [](auto x, auto beta) { return x * xg::sigmoid(beta * x); });
//     xg::Tensor y = pswish(x, beta);               // beta.requires_grad_() gets d loss / d beta
//
// Derivatives: when x requires grad, the forward pass also computes f' (one dual pass, sharing
// what the compiler can with f) and keeps it, so backward is one multiply (a tensor of x's size is
// kept until then; a one-lambda gelu runs 1.2x the built-in instead of 1.6x). A backward that
// records a graph computes f' from x again; its own gradient uses f'' (two nested duals),
// and so on up to f^(4) (parameters: mixed partials up to total order 3). With a hand-written df,
// backward is h df(x, y) and higher orders are the partials of df in x and y (PyTorch's pattern:
// the y-partial flows back through the forward op), so f's formula itself is never differentiated.
// The kink convention of a piecewise lambda is the branch its xg::where picks at the kink (see
// scalar_math.hpp).
#pragma once
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "activation_registry.hpp"
#include "elementwise_activation.hpp"

namespace xg {

/// A named elementwise activation made by xg::activation; callable on tensors like a built-in and
/// recorded in the graph under its name (grad_fn_name, DOT export, error messages).
class UserActivation {
public:
    /// The implementation behind a UserActivation (one per kind of definition).
    class Impl {
    public:
        virtual ~Impl() = default;
        /// y = f(x) recorded in the graph.
        virtual Tensor apply(const Tensor& x) const = 0;
        /// y = f(x, param) recorded in the graph (activations with a parameter).
        virtual Tensor apply(const Tensor& x, const Tensor& param) const {
            (void)param;
            (void)x;
            throw ValueError(name + ": this activation takes no parameter; call it as act(x)");
        }
        /// f^(order)(x) by duals of the scalar function (order 0..2; not recorded).
        virtual Tensor automatic_derivative(const Tensor& x, int order) const = 0;
        /// d^order f(x, param) / dx^order by duals (activations with a parameter).
        virtual Tensor automatic_derivative(const Tensor& x, const Tensor& param, int order) const {
            (void)param;
            return automatic_derivative(x, order);
        }
        std::string name;
        bool hand_written = false;
        bool takes_param = false;
    };

    /// An empty activation (calling it throws).
    UserActivation() = default;
    explicit UserActivation(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

    /// y = f(x).
    Tensor operator()(const Tensor& x) const { return impl().apply(x); }
    /// y = f(x, param) with param broadcast to x's shape; param gets a gradient when it requires one.
    Tensor operator()(const Tensor& x, const Tensor& param) const { return impl().apply(x, param); }
    /// The op name used in the graph.
    const std::string& name() const { return impl().name; }
    /// True when f takes a parameter tensor (call as act(x, param) or bind it).
    bool takes_param() const { return impl().takes_param; }
    /// True when backward uses a hand-written derivative.
    bool hand_written() const { return impl().hand_written; }
    /// f^(order)(x) elementwise from forward-mode duals (order 0, 1 or 2; not recorded).
    Tensor automatic_derivative(const Tensor& x, int order = 1) const { return impl().automatic_derivative(x, order); }
    /// d^order f(x, param) / dx^order elementwise from forward-mode duals (not recorded).
    Tensor automatic_derivative(const Tensor& x, const Tensor& param, int order = 1) const {
        return impl().automatic_derivative(x, param, order);
    }
    /// The same activation with its parameter fixed to `param` (which may require grad): x -> f(x, param).
    UserActivation bind(Tensor param) const;
    /// The registry entry of this activation (throws ValueError if it still needs a parameter).
    ActivationInfo info() const;

private:
    const Impl& impl() const {
        if (!impl_) throw ValueError("activation: this UserActivation is empty (made by its default constructor)");
        return *impl_;
    }
    std::shared_ptr<const Impl> impl_;
};

namespace detail {

/// (x, y) -> df(x, y) as an X.
template <class DF>
struct HandDerivative {
    DF df;
    template <class X>
    X operator()(const X& x, const X& y) const {
        return value_of<X>(df(x, y));
    }
};

template <class F>
class AutoActivation final : public UserActivation::Impl {
public:
    AutoActivation(std::string n, F f)
        : f_(f), def_(make_def<Saves::derivative>(n, f, AutoDerivative<F>{f}, AutoDerivative<F>{f})) {
        name = std::move(n);
    }
    Tensor apply(const Tensor& x) const override { return elementwise_forward(def_, x); }
    Tensor automatic_derivative(const Tensor& x, int order) const override {
        return detail::automatic_derivative(f_, x, order, name);
    }

private:
    F f_;
    std::shared_ptr<const ElementwiseDef<Saves::derivative, F, AutoDerivative<F>, AutoDerivative<F>>> def_;
};

template <class F, class DF>
class HandActivation final : public UserActivation::Impl {
public:
    HandActivation(std::string n, F f, DF df)
        : f_(f), def_(make_param_def(n, HandDerivative<DF>{df}, kGrainTranscendental, 1, "y")) {
        name = std::move(n);
        hand_written = true;
    }
    Tensor apply(const Tensor& x) const override { return hand_forward(f_, def_, x); }
    Tensor automatic_derivative(const Tensor& x, int order) const override {
        return detail::automatic_derivative(f_, x, order, name);
    }

private:
    F f_;
    std::shared_ptr<const ParamDef<HandDerivative<DF>>> def_;
};

template <class F>
class ParamActivation final : public UserActivation::Impl {
public:
    ParamActivation(std::string n, F f) : f_(f), def_(make_param_def(n, f)) {
        name = std::move(n);
        takes_param = true;
    }
    Tensor apply(const Tensor& x) const override {
        (void)x;
        throw ValueError(name +
                         ": this activation takes a parameter tensor; call it as act(x, param) or use bind(param)");
    }
    Tensor apply(const Tensor& x, const Tensor& param) const override { return param_forward(def_, x, param); }
    Tensor automatic_derivative(const Tensor& x, int order) const override {
        (void)x;
        (void)order;
        throw ValueError(name + ": this activation takes a parameter tensor; pass it to automatic_derivative");
    }
    Tensor automatic_derivative(const Tensor& x, const Tensor& param, int order) const override {
        return automatic_param_derivative(f_, x, param, order, name);
    }

private:
    F f_;
    std::shared_ptr<const ParamDef<F>> def_;
};

/// An activation with a parameter, bound to one parameter tensor.
class BoundActivation final : public UserActivation::Impl {
public:
    BoundActivation(std::shared_ptr<const UserActivation::Impl> parent, Tensor param)
        : parent_(std::move(parent)), param_(std::move(param)) {
        name = parent_->name;
        hand_written = parent_->hand_written;
    }
    Tensor apply(const Tensor& x) const override { return parent_->apply(x, param_); }
    Tensor automatic_derivative(const Tensor& x, int order) const override {
        return parent_->automatic_derivative(x, param_, order);
    }

private:
    std::shared_ptr<const UserActivation::Impl> parent_;
    Tensor param_;
};

inline void check_activation_name(const std::string& name) {
    if (name.empty()) throw ValueError("activation: the name must not be empty");
    for (char c : name)
        if (c == '"' || c == '\n' || c == '\\' || c == '{' || c == '}')
            throw ValueError("activation: name '" + name + "' contains a character not allowed in op names");
}

}  // namespace detail

inline UserActivation UserActivation::bind(Tensor param) const {
    if (!takes_param()) throw ValueError(name() + ": bind: this activation takes no parameter");
    if (!param.defined()) throw ValueError(name() + ": bind: the parameter is undefined");
    return UserActivation(std::make_shared<const detail::BoundActivation>(impl_, std::move(param)));
}

inline ActivationInfo UserActivation::info() const {
    if (takes_param())
        throw ValueError(name() + ": this activation takes a parameter tensor; register act.bind(param) instead");
    ActivationInfo info;
    auto impl = impl_;
    info.fn = [impl](const Tensor& x) { return impl->apply(x); };
    info.elementwise = true;
    info.hand_written = impl->hand_written;
    info.automatic_derivative = [impl](const Tensor& x, int order) { return impl->automatic_derivative(x, order); };
    info.notes = impl->hand_written ? "user activation with a hand-written derivative"
                                    : "user activation (derivatives from duals)";
    return info;
}

/// An activation from one generic lambda: f(x), or f(x, param) for an activation with a parameter
/// tensor. Derivatives of every order come from forward-mode duals.
template <class F>
UserActivation activation(std::string name, F f) {
    detail::check_activation_name(name);
    if constexpr (std::is_invocable_v<const F&, double>)
        return UserActivation(std::make_shared<const detail::AutoActivation<F>>(std::move(name), std::move(f)));
    else if constexpr (std::is_invocable_v<const F&, double, double>)
        return UserActivation(std::make_shared<const detail::ParamActivation<F>>(std::move(name), std::move(f)));
    else
        static_assert(detail::always_false_v<F>,
                      "xg::activation: f must be a generic lambda callable as f(x) or f(x, param)");
}

/// An activation f with a hand-written derivative df(x, y), y = f(x), used by backward; higher
/// orders are partials of df in x and y (by duals). The lab cross-checks df against the automatic f'.
template <class F, class DF>
UserActivation activation(std::string name, F f, DF df) {
    static_assert(std::is_invocable_v<const F&, double>, "xg::activation: f must be callable as f(x)");
    static_assert(std::is_invocable_v<const DF&, double, double>, "xg::activation: df must be callable as df(x, y)");
    detail::check_activation_name(name);
    return UserActivation(
        std::make_shared<const detail::HandActivation<F, DF>>(std::move(name), std::move(f), std::move(df)));
}

/// Registers a user activation under its name (an activation with a parameter must be bound first).
inline void register_activation(const UserActivation& act) { register_activation(act.name(), act.info()); }

}  // namespace xg

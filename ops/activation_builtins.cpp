// ops/: the registry entries of the built-in activations and their fused in-pass kernels.
#include "activation_defs.hpp"

namespace xg {
using namespace activation_defs;

// --- the registry's built-in entries ------------------------------------------------------------------
std::vector<std::pair<std::string, ActivationInfo>> detail::builtin_activations() {
    std::vector<std::pair<std::string, ActivationInfo>> r;
    auto add = [&r](const std::string& name, ActivationInfo info) { r.emplace_back(name, std::move(info)); };
    auto structural = [](ActivationFn fn, std::string notes) {
        ActivationInfo info;
        info.fn = std::move(fn);
        info.notes = std::move(notes);
        return info;
    };
    add("sigmoid", entry(
                       sigmoid_def(), [](const Tensor& x) { return sigmoid(x); }, "d = y (1 - y) from the output"));
    add("tanh", entry(
                    tanh_def(), [](const Tensor& x) { return tanh(x); }, "d = 1 - y^2 from the output"));
    add("relu", entry(
                    relu_def(), [](const Tensor& x) { return relu(x); }, "relu'(0) = 0"));
    add("relu6", entry(
                     hardtanh_def("relu6", 0, 6), [](const Tensor& x) { return relu6(x); },
                     "d = 0 at 0 and at 6 (bounds included, as PyTorch)"));
    add("hardtanh", entry(
                        hardtanh_def("hardtanh", -1, 1), [](const Tensor& x) { return hardtanh(x); },
                        "min -1, max 1; d = 0 at the bounds"));
    add("leaky_relu", entry(
                          leaky_relu_def("leaky_relu", 0.01), [](const Tensor& x) { return leaky_relu(x); },
                          "negative_slope 0.01; d(0) = 0.01"));
    {
        // prelu with PyTorch's initial weight 0.25 (a layer owns the learnable weight).
        auto def = leaky_relu_def("prelu", 0.25);
        add("prelu", entry(
                         def, [](const Tensor& x) { return prelu(x, full({}, 0.25, x.dtype())); },
                         "weight fixed at 0.25 here (PyTorch's initial value); d(0) = weight"));
    }
    add("rrelu", entry(
                     leaky_relu_def("rrelu", (1.0 / 8 + 1.0 / 3) / 2), [](const Tensor& x) { return rrelu(x); },
                     "eval mode: slope (1/8 + 1/3) / 2"));
    add("elu", entry(
                   elu_output_def("elu", 1, 1), [](const Tensor& x) { return elu(x); }, "alpha 1; elu'(0) = alpha"));
    add("selu", entry(
                    elu_output_def("selu", kSeluAlpha, kSeluScale), [](const Tensor& x) { return selu(x); },
                    "selu'(0) = scale * alpha"));
    add("celu", entry(
                    celu_def(1), [](const Tensor& x) { return celu(x); }, "alpha 1; celu'(0) = 1"));
    add("gelu", entry(
                    gelu_def(), [](const Tensor& x) { return gelu(x); }, "exact erf form"));
    add("gelu_tanh", entry(
                         gelu_tanh_def(), [](const Tensor& x) { return gelu(x, "tanh"); }, "tanh approximation"));
    add("silu", entry(
                    silu_def(), [](const Tensor& x) { return silu(x); }, "x sigmoid(x)"));
    add("swish", entry(
                     swish_def("swish", 1.0), [](const Tensor& x) { return swish(x); }, "beta 1 (= silu)"));
    add("mish", entry(
                    mish_def(), [](const Tensor& x) { return mish(x); }, "x tanh(softplus(x))"));
    add("softplus", entry(
                        softplus_unit_def(20), [](const Tensor& x) { return softplus(x); },
                        "beta 1, threshold 20: identity where x * beta > 20"));
    add("softsign", entry(
                        softsign_def(), [](const Tensor& x) { return softsign(x); }, "softsign''(0) = 0"));
    add("hardsigmoid", entry(
                           hardsigmoid_def(), [](const Tensor& x) { return hardsigmoid(x); }, "d(+-3) = 0"));
    add("hardswish", entry(
                         hardswish_def(), [](const Tensor& x) { return hardswish(x); },
                         "d(-3) = -0.5, d(3) = 1.5 (PyTorch's convention)"));
    add("log_sigmoid", entry(
                           log_sigmoid_def(), [](const Tensor& x) { return log_sigmoid(x); }, "d = sigmoid(-x)"));
    add("tanhshrink", entry(
                          tanhshrink_def(), [](const Tensor& x) { return tanhshrink(x); }, "d = tanh(x)^2"));
    add("softshrink",
        entry(
            softshrink_def(0.5), [](const Tensor& x) { return softshrink(x); }, "lambda 0.5; d(+-0.5) = 0"));
    add("hardshrink", entry(
                          hardshrink_def(0.5), [](const Tensor& x) { return hardshrink(x); },
                          "lambda 0.5; jumps at +-0.5; d(+-0.5) = 0"));
    add("threshold", entry(
                         threshold_def(0.0, 0.0), [](const Tensor& x) { return threshold(x, 0.0, 0.0); },
                         "threshold 0, value 0; d(0) = 0"));
    add("step",
        entry(
            def_of<Saves::input>(
                "step", step_value(0.0, 1.0), [](auto) { return 0; }, true),
            [](const Tensor& x) { return step(x); }, "1 for x >= 0; zero gradient (see StepOptions for surrogates)"));
    {
        auto def = def_of<Saves::input>("step_sigmoid", step_value(0.0, 1.0), [](auto x) {
            const auto s = xg::sigmoid(x * 5.0);
            return s * (1 - s) * 5.0;
        });
        ActivationInfo info = entry(
            def,
            [](const Tensor& x) {
                StepOptions o;
                o.surrogate = StepSurrogate::sigmoid;
                o.slope = 5.0;
                return step(x, o);
            },
            "step with the surrogate gradient of a sigmoid of slope 5 (it differs from the "
            "true derivative 0 on purpose)");
        add("step_sigmoid", std::move(info));
    }
    add("heaviside", entry(
                         def_of<Saves::input>(
                             "heaviside", step_value(0.0, 0.5), [](auto) { return 0; }, true),
                         [](const Tensor& x) { return heaviside(x); }, "value 0.5 at 0; zero gradient"));
    add("glu", structural([](const Tensor& x) { return glu(x); }, "along the last axis (size must be even)"));
    add("softmax", structural([](const Tensor& x) { return softmax(x); }, "along the last axis"));
    add("log_softmax", structural([](const Tensor& x) { return log_softmax(x); }, "along the last axis"));
    add("softmin", structural([](const Tensor& x) { return softmin(x); }, "along the last axis"));
    return r;
}

// --- in-pass kernels for producers that fuse an activation (ops/fused_activation.hpp) -------------
namespace {
// Get returns the activation's definition; the kernels run its f and d0 exactly as its own ops do.
template <auto Get>
struct FusedKernels {
    template <class T>
    static void forward(const T* z, T* y, std::int64_t n) {
        detail::simd_run<false, false, T, 1>(
            std::array<const T*, 1>{z}, std::array<bool, 1>{false}, false, y, 0, n,
            [&f = Get()->f](auto v) { return f(v); }, std::make_index_sequence<1>{});
    }
    template <class T>
    static void backward(const T* g, const T* u, T* out, std::int64_t n) {
        const auto& def = Get();
        detail::simd_run<false, false, T, 2>(
            std::array<const T*, 2>{g, u}, std::array<bool, 2>{false, false}, false, out, 0, n,
            [&def](auto hb, auto ub) { return hb * detail::as_batch<decltype(hb)>(def->d0(ub)); },
            std::make_index_sequence<2>{});
    }
    static Tensor op(const Tensor& g, const Tensor& u) { return detail::chain_op<0>(Get(), g, u); }
    static detail::FusedActivation make(const char* name) {
        using D = std::remove_cvref_t<decltype(*Get())>;
        return {name, D::saves == Saves::output, &forward<float>, &forward<double>, &backward<float>, &backward<double>,
                &op};
    }
};
}  // namespace

const detail::FusedActivation* detail::fused_activation(const std::string& name) {
    static const FusedActivation table[] = {
        FusedKernels<relu_def>::make("relu"),           FusedKernels<sigmoid_def>::make("sigmoid"),
        FusedKernels<tanh_def>::make("tanh"),           FusedKernels<gelu_def>::make("gelu"),
        FusedKernels<gelu_tanh_def>::make("gelu_tanh"), FusedKernels<silu_def>::make("silu")};
    for (const auto& f : table)
        if (name == f.name) return &f;
    return nullptr;
}

}  // namespace xg

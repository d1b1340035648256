#include "activation_registry.hpp"

#include <map>
#include <mutex>

#include "activations.hpp"

namespace xg {

namespace {
struct Registry {
    std::mutex mutex;
    std::map<std::string, ActivationFn> fns;
    Registry() {
        fns["sigmoid"] = [](const Tensor& x) { return sigmoid(x); };
        fns["tanh"] = [](const Tensor& x) { return tanh(x); };
        fns["relu"] = [](const Tensor& x) { return relu(x); };
    }
};
Registry& registry() {
    static Registry r;
    return r;
}
}  // namespace

void register_activation(const std::string& name, ActivationFn fn) {
    if (name.empty() || !fn) throw ValueError("register_activation: a name and a function are required");
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.fns[name] = std::move(fn);
}

ActivationFn get_activation(const std::string& name) {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.fns.find(name);
    if (it == r.fns.end()) {
        std::string known;
        for (const auto& [n, f] : r.fns) known += (known.empty() ? "" : ", ") + n;
        throw ValueError("activation: unknown activation '" + name + "' (known: " + known + ")");
    }
    return it->second;
}

bool has_activation(const std::string& name) {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    return r.fns.count(name) > 0;
}

std::vector<std::string> activation_names() {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    std::vector<std::string> names;
    for (const auto& [n, f] : r.fns) names.push_back(n);
    return names;
}

}  // namespace xg

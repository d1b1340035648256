#include "activation_registry.hpp"

#include <map>
#include <mutex>

#include "../engine/error.hpp"

namespace xg {

namespace {
struct Registry {
    std::mutex mutex;
    std::map<std::string, ActivationInfo> entries;
    Registry() {
        for (auto& [name, info] : detail::builtin_activations()) entries[name] = std::move(info);
    }
};
Registry& registry() {
    static Registry r;
    return r;
}

// Caller holds the lock.
const ActivationInfo& find(Registry& r, const std::string& name) {
    auto it = r.entries.find(name);
    if (it == r.entries.end()) {
        std::string known;
        for (const auto& [n, e] : r.entries) known += (known.empty() ? "" : ", ") + n;
        throw ValueError("activation: unknown activation '" + name + "' (known: " + known + ")");
    }
    return it->second;
}
}  // namespace

void register_activation(const std::string& name, ActivationFn fn) {
    if (name.empty() || !fn) throw ValueError("register_activation: a name and a function are required");
    ActivationInfo info;
    info.fn = std::move(fn);
    register_activation(name, std::move(info));
}

void register_activation(const std::string& name, ActivationInfo info) {
    if (name.empty() || !info.fn) throw ValueError("register_activation: a name and a function are required");
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.entries[name] = std::move(info);
}

ActivationFn get_activation(const std::string& name) {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    return find(r, name).fn;
}

ActivationInfo activation_info(const std::string& name) {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    return find(r, name);
}

bool has_activation(const std::string& name) {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    return r.entries.count(name) > 0;
}

std::vector<std::string> activation_names() {
    auto& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    std::vector<std::string> names;
    for (const auto& [n, e] : r.entries) names.push_back(n);
    return names;
}

}  // namespace xg

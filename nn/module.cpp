#include "module.hpp"

#include <algorithm>
#include <ostream>
#include <set>
#include <sstream>

#include "../engine/error.hpp"

namespace xg::nn {

Tensor Module::operator()(const Tensor& x) {
    Tensor y = forward(x);
    for (auto& [id, hook] : hooks_) hook(*this, x, y);
    return y;
}

void Module::register_parameter(const std::string& name, Tensor& slot) {
    if (name.empty() || name.find('.') != std::string::npos)
        throw ValueError("register_parameter: invalid name '" + name + "' (non-empty, no dots)");
    if (!slot.defined()) throw ValueError("register_parameter: parameter '" + name + "' is undefined");
    for (const auto& [n, p] : params_)
        if (n == name) throw ValueError("register_parameter: '" + name + "' is already registered");
    slot.requires_grad_(true);
    params_.emplace_back(name, &slot);
}

void Module::register_buffer(const std::string& name, Tensor& slot) {
    if (name.empty() || name.find('.') != std::string::npos)
        throw ValueError("register_buffer: invalid name '" + name + "' (non-empty, no dots)");
    if (!slot.defined()) throw ValueError("register_buffer: buffer '" + name + "' is undefined");
    buffers_.emplace_back(name, &slot);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
    if (!module) throw ValueError("register_module: submodule '" + name + "' is null");
    if (name.empty() || name.find('.') != std::string::npos)
        throw ValueError("register_module: invalid name '" + name + "' (non-empty, no dots)");
    for (const auto& [n, m] : children_)
        if (n == name) throw ValueError("register_module: '" + name + "' is already registered");
    children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool params, bool buffers, bool recurse, StateDict& out) const {
    if (params)
        for (const auto& [n, p] : params_) out.emplace_back(prefix + n, *p);
    if (buffers)
        for (const auto& [n, b] : buffers_) out.emplace_back(prefix + n, *b);
    if (recurse)
        for (const auto& [n, m] : children_) m->collect(prefix + n + ".", params, buffers, true, out);
}

std::vector<Tensor> Module::parameters(bool recurse) const {
    std::vector<Tensor> r;
    for (auto& [n, p] : named_parameters(recurse)) r.push_back(p);
    return r;
}

StateDict Module::named_parameters(bool recurse) const {
    StateDict r;
    collect("", true, false, recurse, r);
    return r;
}

StateDict Module::named_buffers(bool recurse) const {
    StateDict r;
    collect("", false, true, recurse, r);
    return r;
}

StateDict Module::state_dict() const {
    StateDict r;
    collect("", true, true, true, r);
    return r;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> r;
    for (const auto& [n, m] : children_) {
        r.emplace_back(n, m);
        for (auto& [cn, cm] : m->named_modules()) r.emplace_back(n + "." + cn, cm);
    }
    return r;
}

std::int64_t Module::num_parameters() const {
    std::int64_t n = 0;
    for (const auto& p : parameters()) n += p.numel();
    return n;
}

void Module::train(bool on) {
    training_ = on;
    for (auto& [n, m] : children_) m->train(on);
}

void Module::zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
}

void Module::to(Dtype dtype) {
    if (!is_floating(dtype))
        throw DtypeError(std::string("Module::to: parameters must be floating, got ") + dtype_name(dtype));
    NoGradGuard ng;
    for (auto& [n, p] : params_)
        if (p->dtype() != dtype) *p = Tensor(p->to(dtype).array(), true);
    for (auto& [n, b] : buffers_)
        if (is_floating(b->dtype()) && b->dtype() != dtype) *b = b->to(dtype);
    for (auto& [n, m] : children_) m->to(dtype);
}

void Module::load_state_dict(const StateDict& state, bool strict) {
    StateDict own;
    collect("", true, true, true, own);
    std::map<std::string, const Tensor*> given;
    std::vector<std::string> duplicates, missing, unexpected, mismatched;
    for (const auto& [n, t] : state) {
        if (!given.emplace(n, &t).second) duplicates.push_back(n);
        if (!t.defined()) mismatched.push_back("'" + n + "' is undefined");
    }
    std::set<std::string> known;
    for (const auto& [n, t] : own) {
        known.insert(n);
        auto it = given.find(n);
        if (it == given.end()) {
            missing.push_back(n);
        } else if (it->second->defined() && it->second->shape() != t.shape()) {
            mismatched.push_back("'" + n + "' expects shape " + shape_str(t.shape()) + ", got " +
                                 shape_str(it->second->shape()));
        }
    }
    for (const auto& [n, t] : state)
        if (!known.count(n)) unexpected.push_back(n);
    auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
        return s;
    };
    std::string err;
    if (!duplicates.empty()) err += "; duplicate entries: " + join(duplicates);
    if (strict && !missing.empty()) err += "; missing entries: " + join(missing);
    if (strict && !unexpected.empty()) err += "; unexpected entries: " + join(unexpected);
    if (!mismatched.empty()) err += "; " + join(mismatched);
    if (!err.empty()) throw ValueError("load_state_dict: " + err.substr(2));
    NoGradGuard ng;
    for (auto& [n, t] : own) {
        auto it = given.find(n);
        if (it != given.end()) t.copy_(*it->second);  // t shares the parameter's storage
    }
}

std::size_t Module::register_forward_hook(ForwardHook hook) {
    if (!hook) throw ValueError("register_forward_hook: the hook is empty");
    hooks_.emplace(next_hook_, std::move(hook));
    return next_hook_++;
}

void Module::remove_forward_hook(std::size_t id) { hooks_.erase(id); }

std::string format_count(std::int64_t n) {
    std::string s = std::to_string(n < 0 ? -n : n), r;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i > 0 && (s.size() - i) % 3 == 0) r += ',';
        r += s[i];
    }
    return n < 0 ? "-" + r : r;
}

void Module::print(std::ostream& os, int indent) const {
    os << type_name_ << "(" << extra_repr();
    if (children_.empty()) {
        os << ")";
        const std::int64_t n = num_parameters();
        if (n > 0) os << "  # " << format_count(n) << " parameters";
        return;
    }
    os << "\n";
    for (const auto& [n, m] : children_) {
        os << std::string(indent + 2, ' ') << "(" << n << "): ";
        m->print(os, indent + 2);
        os << "\n";
    }
    os << std::string(indent, ' ') << ")";
}

std::string Module::to_string() const {
    std::ostringstream os;
    print(os, 0);
    std::int64_t trainable = 0;
    for (const auto& p : parameters()) trainable += p.requires_grad() ? p.numel() : 0;
    os << "\nTotal parameters: " << format_count(num_parameters()) << " (trainable " << format_count(trainable) << ")";
    return os.str();
}

std::ostream& operator<<(std::ostream& os, const Module& module) { return os << module.to_string(); }

}  // namespace xg::nn

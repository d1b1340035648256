#include "shape_ops.hpp"

#include <algorithm>

#include "../autograd/node.hpp"
#include "../engine/array_ops.hpp"
#include "../engine/kernels.hpp"

namespace xg {

namespace {
using Grads = std::vector<Tensor>;

void check_defined(const Tensor& t, const char* op) {
    if (!t.defined()) throw ValueError(std::string(op) + ": the input is undefined");
}

void check_index_tensor(const Tensor& index, const char* op) {
    check_defined(index, op);
    if (index.dtype() != Dtype::i64)
        throw DtypeError(std::string(op) + ": index must be int64, got " + dtype_name(index.dtype()));
}
}  // namespace

Tensor Tensor::to(Dtype dtype) const {
    if (!defined()) throw ValueError("to: the tensor is undefined");
    if (dtype == this->dtype()) return *this;
    // Integer results never require grad (the conversion is not differentiable).
    if (!is_floating(dtype)) return Tensor(array().to(dtype));
    const Dtype from = this->dtype();
    return make_result("to", array().to(dtype), {*this},
                       [from](const Tensor& g, const Tensor&) { return Grads{g.to(from)}; });
}

Tensor reshape(const Tensor& x, Shape shape) {
    check_defined(x, "reshape");
    std::int64_t known = 1;
    int infer = -1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1) {
            if (infer >= 0) throw ShapeError("reshape: only one dimension can be -1, got " + shape_str(shape));
            infer = static_cast<int>(i);
        } else if (shape[i] < 0) {
            throw ShapeError("reshape: invalid dimension in " + shape_str(shape));
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0)
            throw ShapeError("reshape: cannot reshape " + shape_str(x.shape()) + " into " + shape_str(shape) +
                             ": with 0 elements the -1 dimension is ambiguous");
        if (x.numel() % known != 0)
            throw ShapeError("reshape: cannot reshape " + shape_str(x.shape()) + " (" + std::to_string(x.numel()) +
                             " elements) into " + shape_str(shape));
        shape[infer] = x.numel() / known;
    }
    if (shape == x.shape()) return x;
    const Shape in = x.shape();
    return make_result("reshape", x.array().reshape(shape), {x},
                       [in](const Tensor& g, const Tensor&) { return Grads{reshape(g, in)}; });
}

Tensor flatten(const Tensor& x, std::int64_t start, std::int64_t end) {
    check_defined(x, "flatten");
    if (x.ndim() == 0) return reshape(x, {1});
    const int s = normalize_axis(start, x.ndim(), "flatten"), e = normalize_axis(end, x.ndim(), "flatten");
    if (s > e)
        throw IndexError("flatten: start axis " + std::to_string(start) + " is after end axis " + std::to_string(end));
    Shape shape(x.shape().begin(), x.shape().begin() + s);
    std::int64_t n = 1;
    for (int i = s; i <= e; ++i) n *= x.shape()[i];
    shape.push_back(n);
    shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
    return reshape(x, shape);
}

Tensor squeeze(const Tensor& x) {
    check_defined(x, "squeeze");
    Shape s;
    for (auto d : x.shape())
        if (d != 1) s.push_back(d);
    return reshape(x, s);
}

Tensor squeeze(const Tensor& x, std::int64_t axis) {
    check_defined(x, "squeeze");
    const int a = normalize_axis(axis, x.ndim(), "squeeze");
    if (x.ndim() == 0 || x.shape()[a] != 1) return x;
    Shape s = x.shape();
    s.erase(s.begin() + a);
    return reshape(x, s);
}

Tensor unsqueeze(const Tensor& x, std::int64_t axis) {
    check_defined(x, "unsqueeze");
    const int a = normalize_axis(axis, x.ndim() + 1, "unsqueeze");
    Shape s = x.shape();
    s.insert(s.begin() + a, 1);
    return reshape(x, s);
}

Tensor permute(const Tensor& x, const std::vector<std::int64_t>& perm) {
    check_defined(x, "permute");
    if (perm.size() != x.ndim())
        throw ShapeError("permute: " + std::to_string(perm.size()) + " axes given for a tensor of shape " +
                         shape_str(x.shape()));
    std::vector<int> p(perm.size()), inverse(perm.size());
    std::vector<bool> seen(perm.size(), false);
    for (std::size_t i = 0; i < perm.size(); ++i) {
        p[i] = normalize_axis(perm[i], x.ndim(), "permute");
        if (seen[p[i]]) throw IndexError("permute: axis " + std::to_string(perm[i]) + " is repeated");
        seen[p[i]] = true;
        inverse[p[i]] = static_cast<int>(i);
    }
    std::vector<std::int64_t> inv(inverse.begin(), inverse.end());
    return make_result("permute", engine::permute(x.array(), p), {x},
                       [inv](const Tensor& g, const Tensor&) { return Grads{permute(g, inv)}; });
}

Tensor transpose(const Tensor& x, std::int64_t axis0, std::int64_t axis1) {
    check_defined(x, "transpose");
    if (x.ndim() < 2 && (axis0 == 0 || axis0 == -1) && (axis1 == 0 || axis1 == -1)) return x;
    const int a = normalize_axis(axis0, x.ndim(), "transpose"), b = normalize_axis(axis1, x.ndim(), "transpose");
    std::vector<std::int64_t> perm(x.ndim());
    for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<std::int64_t>(i);
    std::swap(perm[a], perm[b]);
    return permute(x, perm);
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
    check_defined(x, "broadcast_to");
    if (x.shape() == shape) return x;
    const Shape in = x.shape();
    return make_result("broadcast_to", engine::broadcast_to(x.array(), shape), {x},
                       [in](const Tensor& g, const Tensor&) { return Grads{sum_to(g, in)}; });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
    check_defined(x, "sum_to");
    if (x.shape() == shape) return x;
    if (broadcast_shape(x.shape(), shape, "sum_to") != x.shape())
        throw ShapeError("sum_to: shape " + shape_str(x.shape()) + " is not a broadcast of " + shape_str(shape));
    const Shape in = x.shape();
    return make_result("sum_to", engine::sum_to(x.array(), shape), {x},
                       [in](const Tensor& g, const Tensor&) { return Grads{broadcast_to(g, in)}; });
}

Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
    check_defined(x, "slice");
    if (x.ndim() == 0) throw IndexError("slice: cannot slice a 0-d tensor");
    const int a = normalize_axis(axis, x.ndim(), "slice");
    if (step <= 0) throw ValueError("slice: step must be positive, got " + std::to_string(step));
    const std::int64_t n = x.shape()[a];
    auto clampi = [n](std::int64_t i) { return std::clamp<std::int64_t>(i < 0 ? i + n : i, 0, n); };
    const std::int64_t b = clampi(start), e = std::max(clampi(stop), b);
    const Shape in = x.shape();
    return make_result("slice", engine::slice(x.array(), a, b, e, step), {x},
                       [in, a, b, step](const Tensor& g, const Tensor&) {
                           // The gradient of slice is a scatter into zeros, itself linear in g.
                           const std::int64_t len = g.shape()[a];  // the slice's length (gg has the full one)
                           return Grads{make_result("slice_backward", engine::slice_scatter(g.array(), in, a, b, step),
                                                    {g}, [a, b, step, len](const Tensor& gg, const Tensor&) {
                                                        return Grads{slice(gg, a, b, b + len * step, step)};
                                                    })};
                       });
}

Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& index) {
    check_defined(x, "index_select");
    check_index_tensor(index, "index_select");
    if (index.ndim() > 1)
        throw ShapeError("index_select: index must be 0-d or 1-d, got shape " + shape_str(index.shape()));
    if (x.ndim() == 0) throw IndexError("index_select: cannot index a 0-d tensor");
    const int a = normalize_axis(axis, x.ndim(), "index_select");
    const Array idx = index.array().reshape({index.numel()});
    const Shape in = x.shape();
    return make_result(
        "index_select", engine::index_select(x.array(), a, idx), {x}, [in, a, idx](const Tensor& g, const Tensor&) {
            return Grads{make_result(
                "index_select_backward", engine::index_add(g.array(), in, a, idx), {g},
                [a, idx](const Tensor& gg, const Tensor&) { return Grads{index_select(gg, a, Tensor(idx))}; })};
        });
}

Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index) {
    check_defined(x, "gather");
    check_index_tensor(index, "gather");
    if (index.ndim() != x.ndim())
        throw ShapeError("gather: index of shape " + shape_str(index.shape()) + " must have the rank of input " +
                         shape_str(x.shape()));
    const int a = normalize_axis(axis, x.ndim(), "gather");
    if (x.ndim() == 0) return reshape(gather(reshape(x, {1}), 0, reshape(index, {1})), {});
    for (std::size_t d = 0; d < x.ndim(); ++d)
        if (static_cast<int>(d) != a && index.shape()[d] > x.shape()[d])
            throw ShapeError("gather: index shape " + shape_str(index.shape()) + " exceeds input shape " +
                             shape_str(x.shape()) + " at dimension " + std::to_string(d));
    const Array idx = index.array();
    const Shape in = x.shape();
    return make_result("gather", engine::gather(x.array(), a, idx), {x}, [in, a, idx](const Tensor& g, const Tensor&) {
        return Grads{
            make_result("gather_backward", engine::scatter_add(g.array(), in, a, idx), {g},
                        [a, idx](const Tensor& gg, const Tensor&) { return Grads{gather(gg, a, Tensor(idx))}; })};
    });
}

Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis) {
    if (xs.empty()) throw ValueError("concat: expected at least one tensor");
    for (const auto& t : xs) check_defined(t, "concat");
    if (xs[0].ndim() == 0) throw ShapeError("concat: 0-d tensors cannot be concatenated (use stack)");
    const int a = normalize_axis(axis, xs[0].ndim(), "concat");
    Dtype d = xs[0].dtype();
    for (const auto& t : xs) d = promote(d, t.dtype());
    std::vector<Array> parts;
    std::vector<std::int64_t> sizes;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const Shape& s = xs[i].shape();
        bool ok = s.size() == xs[0].ndim();
        for (std::size_t k = 0; ok && k < s.size(); ++k) ok = static_cast<int>(k) == a || s[k] == xs[0].shape()[k];
        if (!ok)
            throw ShapeError("concat: shapes " + shape_str(xs[0].shape()) + " and " + shape_str(s) +
                             " differ outside axis " + std::to_string(a));
        parts.push_back(xs[i].array().to(d));
        sizes.push_back(s[a]);
    }
    return make_result("concat", engine::concat(parts, a), xs,
                       [sizes, a](const Tensor& g, const Tensor&) { return split(g, sizes, a); });
}

Tensor stack(const std::vector<Tensor>& xs, std::int64_t axis) {
    if (xs.empty()) throw ValueError("stack: expected at least one tensor");
    const int a = normalize_axis(axis, xs[0].ndim() + 1, "stack");
    std::vector<Tensor> parts;
    for (const auto& t : xs) {
        check_defined(t, "stack");
        if (t.shape() != xs[0].shape())
            throw ShapeError("stack: all tensors must have the same shape, got " + shape_str(xs[0].shape()) + " and " +
                             shape_str(t.shape()));
        parts.push_back(unsqueeze(t, a));
    }
    return concat(parts, a);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, std::int64_t axis) {
    check_defined(x, "split");
    if (x.ndim() == 0) throw IndexError("split: cannot split a 0-d tensor");
    const int a = normalize_axis(axis, x.ndim(), "split");
    std::int64_t total = 0;
    for (auto s : sizes) {
        if (s < 0) throw ValueError("split: negative section size " + std::to_string(s));
        total += s;
    }
    if (total != x.shape()[a])
        throw ShapeError("split: sizes sum to " + std::to_string(total) + " but axis " + std::to_string(a) +
                         " of shape " + shape_str(x.shape()) + " has " + std::to_string(x.shape()[a]));
    std::vector<Tensor> r;
    std::int64_t off = 0;
    for (auto s : sizes) {
        r.push_back(slice(x, a, off, off + s));
        off += s;
    }
    return r;
}

std::vector<Tensor> split(const Tensor& x, std::int64_t size, std::int64_t axis) {
    check_defined(x, "split");
    if (size <= 0) throw ValueError("split: chunk size must be positive, got " + std::to_string(size));
    if (x.ndim() == 0) throw IndexError("split: cannot split a 0-d tensor");
    const std::int64_t n = x.shape()[normalize_axis(axis, x.ndim(), "split")];
    std::vector<std::int64_t> sizes;
    for (std::int64_t off = 0; off < n; off += size) sizes.push_back(std::min(size, n - off));
    if (sizes.empty()) sizes.push_back(0);
    return split(x, sizes, axis);
}

Tensor one_hot(const Tensor& index, std::int64_t num_classes, Dtype dtype) {
    check_index_tensor(index, "one_hot");
    const std::int64_t* idx = index.array().data<std::int64_t>();
    for (std::int64_t i = 0; i < index.numel(); ++i)
        if (idx[i] < 0 || (num_classes >= 0 && idx[i] >= num_classes))
            throw IndexError("one_hot: class " + std::to_string(idx[i]) + " is out of range for " +
                             std::to_string(num_classes) + " classes (index shape " + shape_str(index.shape()) + ")");
    if (num_classes < 0) {
        if (num_classes != -1)
            throw ValueError("one_hot: num_classes must be -1 (inferred) or non-negative, got " +
                             std::to_string(num_classes));
        if (index.numel() == 0) throw ValueError("one_hot: cannot infer num_classes from an empty index tensor");
        num_classes = *std::max_element(idx, idx + index.numel()) + 1;
    }
    Shape s = index.shape();
    s.push_back(num_classes);
    Array r = engine::full(s, dtype, 0);
    detail::dispatch(dtype, "one_hot", [&]<class T>() {
        T* p = r.data<T>();
        for (std::int64_t i = 0; i < index.numel(); ++i) p[i * num_classes + idx[i]] = T(1);
    });
    return Tensor(std::move(r));
}

}  // namespace xg

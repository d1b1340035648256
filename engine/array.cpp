#include "array.hpp"

#include <cstring>
#include <ostream>

#include "allocator.hpp"
#include "kernels.hpp"

namespace xg {
namespace detail {

struct Storage {
    void* data = nullptr;
    std::size_t capacity = 0;
    std::uint64_t version = 0;
    explicit Storage(std::size_t bytes) { data = cached_alloc(bytes, &capacity); }
    ~Storage() { cached_free(data, capacity); }
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
};

}  // namespace detail

const char* dtype_name(Dtype d) {
    switch (d) {
        case Dtype::f32:
            return "float32";
        case Dtype::f64:
            return "float64";
        case Dtype::i64:
            return "int64";
    }
    return "?";
}

std::ostream& operator<<(std::ostream& os, Dtype d) { return os << dtype_name(d); }

Array::Array(Shape shape, Dtype dtype) : shape_(std::move(shape)), dtype_(dtype) {
    for (auto d : shape_)
        if (d < 0) throw ValueError("array: negative dimension in shape " + shape_str(shape_));
    numel_ = shape_numel(shape_);
    storage_ = std::make_shared<detail::Storage>(static_cast<std::size_t>(numel_) * dtype_size(dtype));
}

std::int64_t Array::size(std::int64_t axis) const {
    if (shape_.empty()) throw IndexError("size: a 0-d tensor has no dimension " + std::to_string(axis));
    return shape_[normalize_axis(axis, ndim(), "size")];
}

void* Array::raw() { return storage_ ? storage_->data : nullptr; }
const void* Array::raw() const { return storage_ ? storage_->data : nullptr; }

template <class T>
T* Array::data() {
    if (dtype_of<T>() != dtype_)
        throw DtypeError(std::string("data: array is ") + dtype_name(dtype_) + ", not " + dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
}
template <class T>
const T* Array::data() const {
    return const_cast<Array*>(this)->data<T>();
}
template float* Array::data<float>();
template double* Array::data<double>();
template std::int64_t* Array::data<std::int64_t>();
template const float* Array::data<float>() const;
template const double* Array::data<double>() const;
template const std::int64_t* Array::data<std::int64_t>() const;

Array Array::reshape(Shape shape) const {
    if (shape_numel(shape) != numel_)
        throw ShapeError("reshape: cannot view shape " + shape_str(shape_) + " (" + std::to_string(numel_) +
                         " elements) as " + shape_str(shape));
    Array r = *this;
    r.shape_ = std::move(shape);
    return r;
}

Array Array::clone() const {
    Array r(shape_, dtype_);
    if (numel_) std::memcpy(r.raw(), raw(), static_cast<std::size_t>(numel_) * dtype_size(dtype_));
    return r;
}

Array Array::to(Dtype dtype) const {
    if (dtype == dtype_) return *this;
    Array r(shape_, dtype);
    detail::dispatch(dtype_, "to", [&]<class S>() {
        detail::dispatch(dtype, "to", [&]<class D>() {
            const S* s = data<S>();
            D* d = r.data<D>();
            detail::parallel_for(numel_, detail::kGrainCheap, [&](std::int64_t b, std::int64_t e) {
                for (std::int64_t i = b; i < e; ++i) d[i] = static_cast<D>(s[i]);
            });
        });
    });
    return r;
}

std::uint64_t Array::version() const { return storage_ ? storage_->version : 0; }
void Array::bump_version() {
    if (storage_) ++storage_->version;
}

}  // namespace xg

#include "array.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <ostream>

#include "allocator.hpp"
#include "kernels.hpp"

namespace xg {
namespace detail {

struct Storage {
    void* data = nullptr;
    std::size_t capacity = 0;
    std::uint64_t version = 0;
    // A lazily filled constant: `pending` until the buffer is allocated and filled with `value`
    // (first access through raw()); `uniform` until someone may have written to it.
    std::atomic<bool> pending{false};
    std::atomic<bool> uniform{false};
    alignas(8) unsigned char value[8] = {};
    std::size_t bytes = 0;
    Dtype dtype = Dtype::f32;
    std::mutex fill_mutex;
    // The sum of all elements, valid while has_sum (see Array::remember_sum); kept on the root.
    std::atomic<bool> has_sum{false};
    std::atomic<double> sum{0.0};
    std::shared_ptr<Storage> owner;  // set on an alias (Array::alias): the storage whose buffer this is

    explicit Storage(std::size_t n) : bytes(n) { data = n <= sizeof(value) ? value : cached_alloc(n, &capacity); }
    explicit Storage(std::shared_ptr<Storage> of)
        : data(of->get()), bytes(of->bytes), dtype(of->dtype), owner(std::move(of)) {}
    Storage(std::size_t n, Dtype d, const void* v) : bytes(n), dtype(d) {
        std::memcpy(value, v, dtype_size(d));
        uniform.store(true, std::memory_order_relaxed);
        pending.store(true, std::memory_order_release);
    }
    ~Storage() {
        if (data && data != value && !owner) cached_free(data, capacity);
    }
    /// The storage that owns the buffer (this one, or the one an alias stands for).
    Storage& root() { return owner ? *owner : *this; }
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    void* get() {
        if (pending.load(std::memory_order_acquire)) materialize();
        return data;
    }
    void materialize() {
        std::lock_guard<std::mutex> lock(fill_mutex);
        if (!pending.load(std::memory_order_relaxed)) return;
        data = cached_alloc(bytes, &capacity);
        dispatch(dtype, "fill", [&]<class T>() {
            T v;
            std::memcpy(&v, value, sizeof(T));
            T* p = static_cast<T*>(data);
            parallel_for(static_cast<std::int64_t>(bytes / sizeof(T)), kGrainCheap,
                         [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, v); });
        });
        pending.store(false, std::memory_order_release);
    }
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
    storage_ = detail::make_pooled<detail::Storage>(static_cast<std::size_t>(numel_) * dtype_size(dtype));
}

std::int64_t Array::size(std::int64_t axis) const {
    if (shape_.empty()) throw IndexError("size: a 0-d tensor has no dimension " + std::to_string(axis));
    return shape_[normalize_axis(axis, ndim(), "size")];
}

// Below this many bytes a constant is filled at once (laziness would not pay).
constexpr std::size_t kLazyFillBytes = 64 * 1024;

Array Array::filled(Shape shape, Dtype dtype, double value) {
    Array r;
    r.shape_ = std::move(shape);
    r.dtype_ = dtype;
    for (auto d : r.shape_)
        if (d < 0) throw ValueError("array: negative dimension in shape " + shape_str(r.shape_));
    r.numel_ = shape_numel(r.shape_);
    const std::size_t bytes = static_cast<std::size_t>(r.numel_) * dtype_size(dtype);
    detail::dispatch(dtype, "filled", [&]<class T>() {
        const T v = static_cast<T>(value);
        if (bytes < kLazyFillBytes) {
            r.storage_ = detail::make_pooled<detail::Storage>(bytes);
            std::fill_n(static_cast<T*>(r.storage_->data), r.numel_, v);
        } else {
            r.storage_ = detail::make_pooled<detail::Storage>(bytes, dtype, &v);
        }
    });
    return r;
}

void* Array::raw() {
    if (!storage_) return nullptr;
    void* p = storage_->get();
    storage_->uniform.store(false, std::memory_order_relaxed);  // the caller may write
    detail::Storage& root = storage_->root();
    if (root.has_sum.load(std::memory_order_relaxed)) root.has_sum.store(false, std::memory_order_relaxed);
    return p;
}

void Array::remember_sum(double sum) {
    if (!storage_) return;
    detail::Storage& root = storage_->root();
    root.sum.store(sum, std::memory_order_relaxed);
    root.has_sum.store(true, std::memory_order_release);
}

bool Array::known_sum(double& sum) const {
    if (!storage_ || !storage_->root().has_sum.load(std::memory_order_acquire)) return false;
    sum = storage_->root().sum.load(std::memory_order_relaxed);
    return true;
}
const void* Array::raw() const { return storage_ ? storage_->get() : nullptr; }

bool Array::is_uniform() const { return storage_ && storage_->uniform.load(std::memory_order_relaxed); }
const void* Array::uniform_value() const { return is_uniform() ? storage_->value : nullptr; }

template <class T>
T* Array::data() {
    if (dtype_of<T>() != dtype_)
        throw DtypeError(std::string("data: array is ") + dtype_name(dtype_) + ", not " + dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
}
template <class T>
const T* Array::data() const {
    if (dtype_of<T>() != dtype_)
        throw DtypeError(std::string("data: array is ") + dtype_name(dtype_) + ", not " + dtype_name(dtype_of<T>()));
    return static_cast<const T*>(raw());
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

// The value of a uniform floating array as a double (exact for float32 and float64).
static double uniform_as_double(const void* v, Dtype d) {
    if (d == Dtype::f32) {
        float f;
        std::memcpy(&f, v, sizeof f);
        return f;
    }
    double x;
    std::memcpy(&x, v, sizeof x);
    return x;
}

Array Array::clone() const {
    if (is_uniform() && is_floating(dtype_)) return filled(shape_, dtype_, uniform_as_double(uniform_value(), dtype_));
    Array r(shape_, dtype_);
    if (numel_) std::memcpy(r.raw(), raw(), static_cast<std::size_t>(numel_) * dtype_size(dtype_));
    return r;
}

Array Array::to(Dtype dtype) const {
    if (dtype == dtype_) return *this;
    if (is_uniform() && is_floating(dtype_) && is_floating(dtype))
        return filled(shape_, dtype, uniform_as_double(uniform_value(), dtype_));
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

std::uint64_t Array::version() const {
    if (!storage_) return 0;
    return storage_->root().version;
}
void Array::bump_version() {
    if (storage_) ++storage_->root().version;
}

bool Array::unique() const {
    return storage_.use_count() == 1 && (!storage_->owner || storage_->owner.use_count() == 1);
}

bool Array::shares_storage(const Array& other) const {
    if (!storage_ || !other.storage_) return storage_ == other.storage_;
    return &storage_->root() == &other.storage_->root();
}

Array Array::alias() const {
    if (!storage_) return *this;
    Array r = *this;
    r.storage_ = detail::make_pooled<detail::Storage>(storage_->owner ? storage_->owner : storage_);
    return r;
}

}  // namespace xg

// engine/: the numeric array under every tensor. Knows nothing of graphs.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtype.hpp"
#include "error.hpp"
#include "shape.hpp"

namespace xg {

namespace detail {
struct Storage;
}

/// A contiguous row-major buffer of `numel()` elements of a runtime dtype, with a shape.
/// Copies of an Array share the buffer (like a tensor view); `clone()` copies the data.
/// Buffers come from a caching allocator so that training steps do not pay page faults again,
/// 64-byte aligned; a buffer of at most 8 bytes (a scalar) lives inside its storage object instead.
class Array {
public:
    /// An undefined array (no buffer).
    Array() = default;
    /// An uninitialised array of the given shape and dtype.
    Array(Shape shape, Dtype dtype);
    /// An array whose elements all equal `value`. Large ones are filled lazily: no buffer is
    /// written until someone asks for the data, so kernels that check is_uniform() (the gradient
    /// of a full reduction, ones_like) read one value instead of a whole array.
    static Array filled(Shape shape, Dtype dtype, double value);

    /// True when the array has a buffer.
    bool defined() const { return storage_ != nullptr; }
    const Shape& shape() const { return shape_; }
    Dtype dtype() const { return dtype_; }
    std::int64_t numel() const { return numel_; }
    std::size_t ndim() const { return shape_.size(); }
    /// Size of dimension `axis` (negative counts from the end).
    std::int64_t size(std::int64_t axis) const;

    /// Untyped pointer to the first element.
    void* raw();
    const void* raw() const;
    /// Typed pointer to the first element; throws DtypeError when T does not match dtype().
    template <class T>
    T* data();
    template <class T>
    const T* data() const;

    /// Same buffer, another shape with the same number of elements (throws ShapeError otherwise).
    Array reshape(Shape shape) const;
    /// A deep copy.
    Array clone() const;
    /// Converted to dtype (shares the buffer when the dtype is already right).
    Array to(Dtype dtype) const;
    /// The same elements under a reference count of its own, which keeps this buffer alive and
    /// shares its version counter. For arrays that other threads copy at every op (DataParallel's
    /// replicas of one parameter): copies of one Array from several cores fight over the cache
    /// line of its count. shares_storage() is true between the two.
    Array alias() const;

    /// Version of the buffer: bumped by every in-place write through the xgrad API.
    std::uint64_t version() const;
    void bump_version();
    /// True while the array is a lazily filled constant (see filled()); reading data() keeps it
    /// uniform, writing through the non-const raw()/data() ends it.
    bool is_uniform() const;
    /// Pointer to the one value of a uniform array (of dtype()); nullptr when not uniform.
    const void* uniform_value() const;
    /// Records the sum of all elements as reduce_sum would compute it from them (same chunks, same
    /// order: bit for bit), for a kernel that computed it while writing them. A full sum of this
    /// buffer then reads no element; writing through the non-const raw()/data() forgets it.
    void remember_sum(double sum);
    /// True, with the sum in `sum`, when remember_sum recorded it and nothing has written since.
    bool known_sum(double& sum) const;
    /// True when no other Array or Tensor shares this buffer (it may be taken over or written).
    bool unique() const;
    /// True when both arrays use the same buffer (directly or through alias()).
    bool shares_storage(const Array& other) const;

private:
    std::shared_ptr<detail::Storage> storage_;
    Shape shape_;
    Dtype dtype_ = Dtype::f32;
    std::int64_t numel_ = 0;
};

/// Statistics of the caching allocator (bytes in use by live arrays, bytes cached for reuse).
struct AllocatorStats {
    std::size_t bytes_in_use = 0;
    std::size_t bytes_cached = 0;
    /// Threads publish their small allocations in steps of up to 1 MiB: the peak may miss up to
    /// 1 MiB per thread (it is never below bytes_in_use).
    std::size_t peak_bytes_in_use = 0;
};
/// Current caching-allocator statistics.
AllocatorStats allocator_stats();
/// Returns all cached (unused) buffers to the operating system: at once for this thread and the
/// shared cache, at their next allocation or free for other threads' caches (which
/// allocator_stats no longer counts).
void empty_cache();

}  // namespace xg

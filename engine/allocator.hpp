// Internal: the caching allocator behind every Array buffer.
#pragma once
#include <cstddef>
#include <memory>
#include <utility>

namespace xg::detail {

/// A 64-byte aligned buffer of at least `bytes` bytes, reused from the cache when possible.
void* cached_alloc(std::size_t bytes, std::size_t* capacity);
/// Returns a buffer obtained from cached_alloc (with the capacity it reported) to the cache.
void cached_free(void* p, std::size_t capacity);

/// Thread-local free lists for small objects (graph nodes with their rules, tensor state, the
/// control blocks of array storage). A training step frees a whole graph and records it again;
/// malloc's slow paths (consolidating thousands of freed chunks) would cost more than the
/// recording itself. Blocks are whole 64-byte aligned cache lines, so that objects of different
/// threads never share a line, carved from 2 MiB chunks on transparent huge pages; the pool keeps
/// its memory for reuse and never returns it to the OS (see pool.cpp).
void* pool_alloc(std::size_t bytes);
/// Returns a block from pool_alloc (with the same size) to the calling thread's free list (its
/// excess goes to a shared list that other threads refill from).
void pool_free(void* p, std::size_t bytes) noexcept;
/// Bytes of free blocks in the shared list (for tests).
std::size_t pool_shared_bytes();
/// Bytes of free blocks held by the calling thread (for tests).
std::size_t pool_local_bytes();
/// Bytes of the chunks the pool has mapped so far (for tests).
std::size_t pool_mapped_bytes();

/// A std allocator over pool_alloc, for std::allocate_shared.
template <class T>
struct PoolAllocator {
    using value_type = T;
    PoolAllocator() = default;
    template <class U>
    PoolAllocator(const PoolAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(pool_alloc(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { pool_free(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const PoolAllocator<U>&) const noexcept {
        return true;
    }
};

/// make_shared through the pool.
template <class T, class... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
    return std::allocate_shared<T>(PoolAllocator<T>(), std::forward<Args>(args)...);
}

}  // namespace xg::detail

// Internal: the caching allocator behind every Array buffer.
#pragma once
#include <cstddef>

namespace xg::detail {

/// A 64-byte aligned buffer of at least `bytes` bytes, reused from the cache when possible.
void* cached_alloc(std::size_t bytes, std::size_t* capacity);
/// Returns a buffer obtained from cached_alloc (with the capacity it reported) to the cache.
void cached_free(void* p, std::size_t capacity);

}  // namespace xg::detail

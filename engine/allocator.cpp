// Caching allocator. A first touch of a fresh page costs ~10 us here, so freed buffers are kept
// in size classes and handed out again instead of being returned to the OS after each op.
#include "allocator.hpp"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "array.hpp"

namespace xg::detail {
namespace {

// Size classes: multiples of 64 bytes up to 4 KiB, then 8 steps per power of two (<= 12.5% slack).
std::size_t size_class(std::size_t bytes) {
    if (bytes <= 4096) return (bytes + 63) / 64 * 64;
    std::size_t p = 4096;
    while (p * 2 < bytes) p *= 2;
    const std::size_t step = p / 8;
    return (bytes + step - 1) / step * step;
}

struct Cache {
    std::mutex mutex;
    std::unordered_map<std::size_t, std::vector<void*>> free_lists;
    std::size_t cached = 0, in_use = 0, peak = 0;
    // Above this many cached bytes, freed buffers go back to the OS.
    static constexpr std::size_t kMaxCached = std::size_t(4) << 30;
    ~Cache() {
        for (auto& [cap, list] : free_lists)
            for (void* p : list) std::free(p);
    }
};

Cache& cache() {
    static Cache* c = new Cache;  // never destroyed: arrays may be freed during static destruction
    return *c;
}

}  // namespace

void* cached_alloc(std::size_t bytes, std::size_t* capacity) {
    const std::size_t cap = size_class(bytes == 0 ? 64 : bytes);
    *capacity = cap;
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        c.in_use += cap;
        if (c.in_use > c.peak) c.peak = c.in_use;
        auto it = c.free_lists.find(cap);
        if (it != c.free_lists.end() && !it->second.empty()) {
            void* p = it->second.back();
            it->second.pop_back();
            c.cached -= cap;
            return p;
        }
    }
    void* p = std::aligned_alloc(64, cap);
    if (!p) throw std::bad_alloc();
    return p;
}

void cached_free(void* p, std::size_t capacity) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.in_use -= capacity;
    if (c.cached + capacity > Cache::kMaxCached) {
        std::free(p);
        return;
    }
    c.free_lists[capacity].push_back(p);
    c.cached += capacity;
}

}  // namespace xg::detail

namespace xg {

AllocatorStats allocator_stats() {
    auto& c = detail::cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return {c.in_use, c.cached, c.peak};
}

void empty_cache() {
    auto& c = detail::cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto& [cap, list] : c.free_lists)
        for (void* p : list) std::free(p);
    c.free_lists.clear();
    c.cached = 0;
}

}  // namespace xg

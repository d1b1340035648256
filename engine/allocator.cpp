// Caching allocator. A first touch of a fresh page costs ~10 us here, so freed buffers are kept
// in size classes and handed out again instead of being returned to the OS after each op.
//
// Small buffers (up to 64 KiB) go through a per-thread cache first: many small graphs built on
// several threads at once (DataParallel shards) would otherwise queue on one mutex for every
// tensor they create and free. A buffer freed on another thread than the one that allocated it
// simply joins the freeing thread's cache.
#include "allocator.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
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

constexpr std::size_t kLocalMaxBytes = 64 << 10;   // larger buffers always use the shared cache
constexpr std::size_t kLocalClasses = 64 + 4 * 8;  // 64-byte steps to 4 KiB, 8 steps per octave to 64 KiB
constexpr std::size_t kLocalMaxCached = 8 << 20;   // per thread; beyond it, frees go to the shared cache
constexpr std::int64_t kFlushBytes = 1 << 20;      // in-use bytes a thread counts before publishing them

// Index of a size class (a capacity from size_class) in a thread cache, for capacities up to
// kLocalMaxBytes.
std::size_t local_index(std::size_t cap) {
    if (cap <= 4096) return cap / 64 - 1;
    std::size_t p = 4096, octave = 0;
    while (p * 2 < cap) p *= 2, ++octave;
    return 64 + 8 * octave + (cap / (p / 8) - 9);
}

// The capacity of thread-cache class i (the inverse of local_index).
std::size_t local_capacity(std::size_t i) {
    if (i < 64) return (i + 1) * 64;
    const std::size_t octave = (i - 64) / 8, k = (i - 64) % 8 + 9;
    return (std::size_t(4096) << octave) / 8 * k;
}

struct Cache {
    std::mutex mutex;
    std::unordered_map<std::size_t, std::vector<void*>> free_lists;
    std::size_t cached = 0;
    // Above this many cached bytes, freed buffers go back to the OS.
    static constexpr std::size_t kMaxCached = std::size_t(4) << 30;
};

Cache& cache() {
    static Cache* c = new Cache;  // never destroyed: arrays may be freed during static destruction
    return *c;
}

// Bytes in use, published by the threads in steps of up to kFlushBytes; and the peak of it.
std::atomic<std::int64_t> g_in_use{0};
std::atomic<std::int64_t> g_peak{0};

void publish_in_use(std::int64_t delta) {
    const std::int64_t now = g_in_use.fetch_add(delta, std::memory_order_relaxed) + delta;
    std::int64_t peak = g_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}

// Returns a buffer to the shared cache (or to the OS when the cache is full).
void shared_free(void* p, std::size_t capacity) {
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        if (c.cached + capacity <= Cache::kMaxCached) {
            c.free_lists[capacity].push_back(p);
            c.cached += capacity;
            return;
        }
    }
    std::free(p);
}

// One thread's cache. Only its owner touches the free lists (no lock per buffer: an uncontended
// mutex here cost 11% of a small-graph step). Other threads read the two counters (relaxed
// atomics with one writer) for allocator_stats; empty_cache() bumps g_generation, and each cache
// releases its buffers at its owner's next allocator call.
std::atomic<std::uint64_t> g_generation{0};

struct ThreadCache {
    std::vector<void*> lists[kLocalClasses];
    std::atomic<std::int64_t> cached{0};
    std::atomic<std::int64_t> unpublished{0};  // in-use bytes counted here and not yet in g_in_use
    std::atomic<std::uint64_t> generation{g_generation.load()};

    void add_cached(std::int64_t d) {
        cached.store(cached.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    }
    // Counts `d` bytes more in use, publishing the count in steps of kFlushBytes.
    void add_in_use(std::int64_t d) {
        std::int64_t u = unpublished.load(std::memory_order_relaxed) + d;
        if (u >= kFlushBytes || u <= -kFlushBytes) {
            publish_in_use(u);
            u = 0;
        }
        unpublished.store(u, std::memory_order_relaxed);
    }
    // Owner only: drops the buffers after an empty_cache() on any thread.
    void follow_generation() {
        const std::uint64_t g = g_generation.load(std::memory_order_acquire);
        if (generation.load(std::memory_order_relaxed) == g) return;
        for (auto& list : lists) {
            for (void* p : list) std::free(p);
            list.clear();
        }
        cached.store(0, std::memory_order_relaxed);
        generation.store(g, std::memory_order_release);
    }
};

struct Registry {
    std::mutex mutex;
    std::vector<ThreadCache*> caches;
};
Registry& registry() {
    static Registry* r = new Registry;  // never destroyed, like the shared cache
    return *r;
}

// Registers this thread's cache on first use; at thread exit hands its buffers to the shared
// cache and publishes its count.
struct ThreadCacheHolder {
    ThreadCache tc;
    ThreadCacheHolder() {
        std::lock_guard<std::mutex> lock(registry().mutex);
        registry().caches.push_back(&tc);
    }
    ~ThreadCacheHolder();
};

thread_local bool t_cache_dead = false;  // set once this thread's cache is destroyed

ThreadCacheHolder::~ThreadCacheHolder() {
    {
        std::lock_guard<std::mutex> lock(registry().mutex);
        auto& v = registry().caches;
        v.erase(std::find(v.begin(), v.end(), &tc));
    }
    tc.follow_generation();
    for (std::size_t i = 0; i < kLocalClasses; ++i)
        for (void* p : tc.lists[i]) shared_free(p, local_capacity(i));
    publish_in_use(tc.unpublished.load(std::memory_order_relaxed));
    t_cache_dead = true;
}

ThreadCache* this_thread_cache() {
    if (t_cache_dead) return nullptr;
    thread_local ThreadCacheHolder holder;
    holder.tc.follow_generation();
    return &holder.tc;
}

}  // namespace

void* cached_alloc(std::size_t bytes, std::size_t* capacity) {
    const std::size_t cap = size_class(bytes == 0 ? 64 : bytes);
    *capacity = cap;
    ThreadCache* tc = cap <= kLocalMaxBytes ? this_thread_cache() : nullptr;
    if (tc) {
        tc->add_in_use(static_cast<std::int64_t>(cap));
        auto& list = tc->lists[local_index(cap)];
        if (!list.empty()) {
            void* p = list.back();
            list.pop_back();
            tc->add_cached(-static_cast<std::int64_t>(cap));
            return p;
        }
    } else {
        publish_in_use(static_cast<std::int64_t>(cap));
    }
    Cache& c = cache();
    {
        std::lock_guard<std::mutex> lock(c.mutex);
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
    ThreadCache* tc = capacity <= kLocalMaxBytes ? this_thread_cache() : nullptr;
    if (tc) {
        tc->add_in_use(-static_cast<std::int64_t>(capacity));
        if (tc->cached.load(std::memory_order_relaxed) + static_cast<std::int64_t>(capacity) <=
            static_cast<std::int64_t>(kLocalMaxCached)) {
            tc->lists[local_index(capacity)].push_back(p);
            tc->add_cached(static_cast<std::int64_t>(capacity));
            return;
        }
    } else {
        publish_in_use(-static_cast<std::int64_t>(capacity));
    }
    shared_free(p, capacity);
}

}  // namespace xg::detail

namespace xg {

AllocatorStats allocator_stats() {
    using namespace detail;
    std::int64_t in_use = g_in_use.load();
    std::int64_t cached = 0;
    {
        const std::uint64_t generation = g_generation.load(std::memory_order_acquire);
        std::lock_guard<std::mutex> lock(registry().mutex);
        for (const ThreadCache* tc : registry().caches) {
            in_use += tc->unpublished.load(std::memory_order_relaxed);
            // A cache behind the generation is released at its owner's next call: not counted.
            if (tc->generation.load(std::memory_order_acquire) == generation)
                cached += tc->cached.load(std::memory_order_relaxed);
        }
    }
    {
        auto& c = cache();
        std::lock_guard<std::mutex> lock(c.mutex);
        cached += static_cast<std::int64_t>(c.cached);
    }
    // The peak is published in steps of up to 1 MiB per thread; it is at least the current use.
    const std::int64_t peak = std::max(g_peak.load(), in_use);
    return {static_cast<std::size_t>(std::max<std::int64_t>(in_use, 0)),
            static_cast<std::size_t>(std::max<std::int64_t>(cached, 0)), static_cast<std::size_t>(peak)};
}

void empty_cache() {
    using namespace detail;
    g_generation.fetch_add(1, std::memory_order_acq_rel);                // every thread cache drops its buffers
    if (ThreadCache* tc = this_thread_cache()) tc->follow_generation();  // this thread's at once
    auto& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    for (auto& [cap, list] : c.free_lists)
        for (void* p : list) std::free(p);
    c.free_lists.clear();
    c.cached = 0;
}

}  // namespace xg

// Thread-local free lists behind detail::make_pooled (see allocator.hpp).
#include <cstddef>
#include <new>

#include "allocator.hpp"

namespace xg::detail {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPooling = false;  // let AddressSanitizer see every allocation and free
#else
constexpr bool kPooling = true;
#endif

// Blocks are whole, 64-byte aligned cache lines: objects used by different threads (the nodes,
// tensors and storages of DataParallel shards, freed and reused across threads) never share a
// line (no false sharing between their reference counts).
constexpr std::size_t kGranule = 64;  // size classes of 64 bytes ...
constexpr std::size_t kClasses = 16;  // ... up to 1 KiB; larger blocks bypass the pool
// Beyond this many bytes per size class and thread, freed blocks go back to malloc. A graph of 10^6
// tiny ops needs ~100 MB per class; with a 16 MB cap every pass handed most blocks back and faulted
// fresh pages in again (W3 at 10^6 nodes: 1.77 -> 0.93 us per node with 256 MB).
constexpr std::size_t kMaxBytesPerClass = std::size_t(256) << 20;

constexpr std::align_val_t kAlign{kGranule};

void* new_block(std::size_t bytes) { return ::operator new((bytes + kGranule - 1) / kGranule * kGranule, kAlign); }
void delete_block(void* p) noexcept { ::operator delete(p, kAlign); }

struct FreeBlock {
    FreeBlock* next;
};

struct Pool {
    FreeBlock* head[kClasses] = {};
    std::size_t count[kClasses] = {};
    ~Pool();
};

// Set when this thread's pool has been destroyed (thread exit); later frees go to the heap.
thread_local bool t_pool_dead = false;
thread_local Pool t_pool;

Pool::~Pool() {
    for (std::size_t c = 0; c < kClasses; ++c)
        while (head[c]) {
            FreeBlock* b = head[c];
            head[c] = b->next;
            delete_block(b);
        }
    t_pool_dead = true;
}

std::size_t size_class(std::size_t bytes) { return (bytes + kGranule - 1) / kGranule; }

}  // namespace

void* pool_alloc(std::size_t bytes) {
    const std::size_t c = size_class(bytes);
    if (!kPooling || c == 0 || c > kClasses || t_pool_dead) return new_block(bytes);
    Pool& pool = t_pool;
    if (FreeBlock* b = pool.head[c - 1]) {
        pool.head[c - 1] = b->next;
        --pool.count[c - 1];
        return b;
    }
    return new_block(c * kGranule);
}

void pool_free(void* p, std::size_t bytes) noexcept {
    const std::size_t c = size_class(bytes);
    if (!kPooling || c == 0 || c > kClasses || t_pool_dead) {
        delete_block(p);
        return;
    }
    Pool& pool = t_pool;
    if (pool.count[c - 1] * c * kGranule >= kMaxBytesPerClass) {
        delete_block(p);
        return;
    }
    auto* b = static_cast<FreeBlock*>(p);
    b->next = pool.head[c - 1];
    pool.head[c - 1] = b;
    ++pool.count[c - 1];
}

}  // namespace xg::detail

// Thread-local free lists behind detail::make_pooled (see allocator.hpp).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

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
// Each thread keeps up to kLocalBytes per size class on its own list (no lock). A list that grows
// past that moves whole to a shared store in one locked O(1) step, and a thread whose list is
// empty takes a whole list from there before asking malloc. Without the shared store, blocks
// allocated on one thread and freed on another (a producer thread's tensors, DataParallel shards)
// piled up on the freeing thread while the allocating one kept calling malloc.
constexpr std::size_t kLocalBytes = std::size_t(1) << 20;
// Beyond this many bytes per size class in the shared store, freed blocks go back to malloc. A
// graph of 10^6 tiny ops needs ~100 MB per class; with a 16 MB cap every pass handed most blocks
// back and faulted fresh pages in again (W3 at 10^6 nodes: 1.77 -> 0.93 us per node with 256 MB).
constexpr std::size_t kSharedBytes = std::size_t(256) << 20;

constexpr std::align_val_t kAlign{kGranule};

void* new_block(std::size_t bytes) { return ::operator new((bytes + kGranule - 1) / kGranule * kGranule, kAlign); }
void delete_block(void* p) noexcept { ::operator delete(p, kAlign); }

struct FreeBlock {
    FreeBlock* next;
};

// A singly linked list of free blocks: pushed and popped at the head, spliced whole.
struct FreeList {
    FreeBlock* head = nullptr;
    FreeBlock* tail = nullptr;
    std::size_t count = 0;
    void push(FreeBlock* b) {
        b->next = head;
        if (!head) tail = b;
        head = b;
        ++count;
    }
    FreeBlock* pop() {
        FreeBlock* b = head;
        head = b->next;
        if (!head) tail = nullptr;
        --count;
        return b;
    }
    void release_all() {
        while (head) delete_block(pop());
    }
};

struct Shared {
    std::mutex mutex;
    std::vector<FreeList> lists[kClasses];      // whole lists given up by threads
    std::size_t blocks[kClasses] = {};          // blocks in lists[c]
    std::atomic<bool> nonempty[kClasses] = {};  // read without the lock before taking it
};
Shared& shared() {
    static Shared* s = new Shared;  // never destroyed: blocks may be freed during static destruction
    return *s;
}

struct Pool {
    FreeList lists[kClasses];
    ~Pool();
};

// Set when this thread's pool has been destroyed (thread exit); later frees go to the heap.
thread_local bool t_pool_dead = false;
thread_local Pool t_pool;

std::size_t size_class(std::size_t bytes) { return (bytes + kGranule - 1) / kGranule; }

// Moves the whole list (blocks of class c) to the shared store, or back to malloc when full.
void give_to_shared(FreeList& list, std::size_t c) {
    if (!list.head) return;
    bool stored = false;
    {
        Shared& sh = shared();
        std::lock_guard<std::mutex> lock(sh.mutex);
        if ((sh.blocks[c - 1] + list.count) * c * kGranule <= kSharedBytes) {
            try {
                sh.lists[c - 1].push_back(list);
                stored = true;
            } catch (...) {  // no memory for the entry: the blocks go back to malloc below
            }
        }
        if (stored) {
            sh.blocks[c - 1] += list.count;
            sh.nonempty[c - 1].store(true, std::memory_order_relaxed);
        }
    }
    if (stored)
        list = FreeList();
    else
        list.release_all();
}

Pool::~Pool() {
    for (std::size_t c = 1; c <= kClasses; ++c) give_to_shared(lists[c - 1], c);
    t_pool_dead = true;
}

}  // namespace

void* pool_alloc(std::size_t bytes) {
    const std::size_t c = size_class(bytes);
    if (!kPooling || c == 0 || c > kClasses || t_pool_dead) return new_block(bytes);
    FreeList& list = t_pool.lists[c - 1];
    if (!list.head) {
        Shared& sh = shared();
        if (sh.nonempty[c - 1].load(std::memory_order_relaxed)) {
            std::lock_guard<std::mutex> lock(sh.mutex);
            auto& lists = sh.lists[c - 1];
            if (!lists.empty()) {
                list = lists.back();
                lists.pop_back();
                sh.blocks[c - 1] -= list.count;
                sh.nonempty[c - 1].store(!lists.empty(), std::memory_order_relaxed);
            }
        }
    }
    if (list.head) return list.pop();
    return new_block(c * kGranule);
}

void pool_free(void* p, std::size_t bytes) noexcept {
    const std::size_t c = size_class(bytes);
    if (!kPooling || c == 0 || c > kClasses || t_pool_dead) {
        delete_block(p);
        return;
    }
    FreeList& list = t_pool.lists[c - 1];
    list.push(static_cast<FreeBlock*>(p));
    if (list.count * c * kGranule > kLocalBytes) give_to_shared(list, c);
}

std::size_t pool_shared_bytes() {
    Shared& sh = shared();
    std::lock_guard<std::mutex> lock(sh.mutex);
    std::size_t bytes = 0;
    for (std::size_t c = 1; c <= kClasses; ++c) bytes += sh.blocks[c - 1] * c * kGranule;
    return bytes;
}

std::size_t pool_local_bytes() {
    if (t_pool_dead) return 0;
    std::size_t bytes = 0;
    for (std::size_t c = 1; c <= kClasses; ++c) bytes += t_pool.lists[c - 1].count * c * kGranule;
    return bytes;
}

}  // namespace xg::detail

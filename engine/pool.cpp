// Thread-local free lists behind detail::make_pooled (see allocator.hpp).
#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
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
// Each thread keeps up to kLocalBytes per size class on its own list (no lock). A list that grows
// past that moves whole to a shared store in one locked O(1) step, and a thread whose list is
// empty takes a whole list from there before carving new blocks. Without the shared store, blocks
// allocated on one thread and freed on another (a producer thread's tensors, DataParallel shards)
// piled up on the freeing thread while the allocating one kept calling malloc.
constexpr std::size_t kLocalBytes = std::size_t(1) << 20;
// Fresh blocks are carved from 2 MiB chunks mapped on 2 MiB boundaries and marked for transparent
// huge pages. A graph of 10^6 tiny ops spans ~800 MB of nodes, tensors and storages; with 4 KiB
// pages its recording and backward walk missed the TLB on nearly every object. Pooled blocks never
// go back to the OS: the pool keeps what the largest graph needed, as PyTorch's caching allocator
// keeps its blocks.
constexpr std::size_t kChunkBytes = std::size_t(2) << 20;

constexpr std::align_val_t kAlign{kGranule};

void* new_unpooled_block(std::size_t bytes) {
    return ::operator new((bytes + kGranule - 1) / kGranule * kGranule, kAlign);
}
void delete_unpooled_block(void* p) noexcept { ::operator delete(p, kAlign); }

char* map_chunk() {
    // Map two chunks' worth and unmap the ends, leaving one chunk on a chunk boundary.
    const std::size_t mapped = 2 * kChunkBytes;
    void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t aligned = (start + kChunkBytes - 1) & ~(kChunkBytes - 1);
    if (aligned > start) ::munmap(p, aligned - start);
    const std::uintptr_t end = aligned + kChunkBytes;
    if (start + mapped > end) ::munmap(reinterpret_cast<void*>(end), start + mapped - end);
    ::madvise(reinterpret_cast<void*>(aligned), kChunkBytes, MADV_HUGEPAGE);  // a hint; may be ignored
    return reinterpret_cast<char*>(aligned);
}

// This thread's current chunk (trivial thread-locals: usable until the thread ends).
thread_local char* t_chunk_next = nullptr;
thread_local char* t_chunk_end = nullptr;

// The unused end of a chunk whose thread has ended, kept inside itself for the next thread.
struct SpareSpan {
    SpareSpan* next;
    char* end;
};

struct Chunks {
    std::mutex mutex;
    SpareSpan* spare = nullptr;
    std::size_t mapped_bytes = 0;
};
Chunks& chunks() {
    static Chunks* c = new Chunks;  // never destroyed, like the blocks
    return *c;
}

void* carve_block(std::size_t bytes) {
    if (static_cast<std::size_t>(t_chunk_end - t_chunk_next) < bytes) {
        // The old chunk's tail (< one block) is left unused.
        Chunks& ch = chunks();
        std::lock_guard<std::mutex> lock(ch.mutex);
        while (ch.spare && static_cast<std::size_t>(ch.spare->end - reinterpret_cast<char*>(ch.spare)) < bytes)
            ch.spare = ch.spare->next;  // a spare span too short for this block is dropped (< 1 KiB)
        if (SpareSpan* s = ch.spare) {
            ch.spare = s->next;
            t_chunk_next = reinterpret_cast<char*>(s);
            t_chunk_end = s->end;
        } else {
            t_chunk_next = map_chunk();
            t_chunk_end = t_chunk_next + kChunkBytes;
            ch.mapped_bytes += kChunkBytes;
        }
    }
    void* p = t_chunk_next;
    t_chunk_next += bytes;
    return p;
}

// Keeps the rest of this thread's chunk for other threads (at thread exit): without it, every
// short-lived thread that records an op would leave most of a 2 MiB page behind.
void give_back_chunk_rest() {
    if (static_cast<std::size_t>(t_chunk_end - t_chunk_next) >= sizeof(SpareSpan)) {
        auto* s = reinterpret_cast<SpareSpan*>(t_chunk_next);
        s->end = t_chunk_end;
        Chunks& ch = chunks();
        std::lock_guard<std::mutex> lock(ch.mutex);
        s->next = ch.spare;
        ch.spare = s;
    }
    t_chunk_next = t_chunk_end = nullptr;
}

// A free block. The head block of a list kept in the shared store also records the list below it
// and its own list's length, so the store needs no memory of its own.
struct FreeBlock {
    FreeBlock* next;
    FreeBlock* next_list;  // shared store only
    std::size_t count;     // shared store only
};
static_assert(sizeof(FreeBlock) <= kGranule);

// A singly linked list of free blocks: pushed and popped at the head, handed on whole.
struct FreeList {
    FreeBlock* head = nullptr;
    std::size_t count = 0;
    void push(FreeBlock* b) {
        b->next = head;
        head = b;
        ++count;
    }
    FreeBlock* pop() {
        FreeBlock* b = head;
        head = b->next;
        --count;
        return b;
    }
};

struct Shared {
    std::mutex mutex;
    // Stacks of whole lists given up by threads, linked through their head blocks. Written under
    // the mutex; read without it to skip the lock when a stack is empty.
    std::atomic<FreeBlock*> lists[kClasses] = {};
};
Shared& shared() {
    static Shared* s = new Shared;  // never destroyed: blocks may be freed during static destruction
    return *s;
}

struct Pool {
    FreeList lists[kClasses];
    ~Pool();
};

// Set when this thread's pool has been destroyed (thread exit); later frees go to the shared store.
thread_local bool t_pool_dead = false;
thread_local Pool t_pool;

std::size_t size_class(std::size_t bytes) { return (bytes + kGranule - 1) / kGranule; }

// Moves the whole list (blocks of class c) to the shared store.
void give_to_shared(FreeList& list, std::size_t c) {
    if (!list.head) return;
    list.head->count = list.count;
    Shared& sh = shared();
    {
        std::lock_guard<std::mutex> lock(sh.mutex);
        list.head->next_list = sh.lists[c - 1].load(std::memory_order_relaxed);
        sh.lists[c - 1].store(list.head, std::memory_order_relaxed);
    }
    list = FreeList();
}

// Takes a whole list of class c from the shared store (an empty list if it has none).
FreeList take_from_shared(std::size_t c) {
    FreeList list;
    Shared& sh = shared();
    if (!sh.lists[c - 1].load(std::memory_order_relaxed)) return list;
    std::lock_guard<std::mutex> lock(sh.mutex);
    if (FreeBlock* top = sh.lists[c - 1].load(std::memory_order_relaxed)) {
        list.head = top;
        list.count = top->count;
        sh.lists[c - 1].store(top->next_list, std::memory_order_relaxed);
    }
    return list;
}

Pool::~Pool() {
    for (std::size_t c = 1; c <= kClasses; ++c) give_to_shared(lists[c - 1], c);
    give_back_chunk_rest();
    t_pool_dead = true;
}

}  // namespace

void* pool_alloc(std::size_t bytes) {
    const std::size_t c = size_class(bytes);
    if (!kPooling || c == 0 || c > kClasses) return new_unpooled_block(bytes);
    if (t_pool_dead) {  // during this thread's exit
        FreeList list = take_from_shared(c);
        if (!list.head) {
            void* p = carve_block(c * kGranule);
            give_back_chunk_rest();
            return p;
        }
        FreeBlock* b = list.pop();
        give_to_shared(list, c);
        return b;
    }
    FreeList& list = t_pool.lists[c - 1];
    if (!list.head) list = take_from_shared(c);
    if (list.head) return list.pop();
    return carve_block(c * kGranule);
}

void pool_free(void* p, std::size_t bytes) noexcept {
    const std::size_t c = size_class(bytes);
    if (!kPooling || c == 0 || c > kClasses) {
        delete_unpooled_block(p);
        return;
    }
    if (t_pool_dead) {  // during this thread's exit
        FreeList one;
        one.push(static_cast<FreeBlock*>(p));
        give_to_shared(one, c);
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
    for (std::size_t c = 1; c <= kClasses; ++c)
        for (const FreeBlock* l = sh.lists[c - 1].load(std::memory_order_relaxed); l; l = l->next_list)
            bytes += l->count * c * kGranule;
    return bytes;
}

std::size_t pool_mapped_bytes() {
    Chunks& ch = chunks();
    std::lock_guard<std::mutex> lock(ch.mutex);
    return ch.mapped_bytes;
}

std::size_t pool_local_bytes() {
    if (t_pool_dead) return 0;
    std::size_t bytes = 0;
    for (std::size_t c = 1; c <= kClasses; ++c) bytes += t_pool.lists[c - 1].count * c * kGranule;
    return bytes;
}

}  // namespace xg::detail

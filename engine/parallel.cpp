#include "parallel.hpp"

#include <tbb/global_control.h>
#include <tbb/info.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "error.hpp"
#include "kernels.hpp"

extern "C" void openblas_set_num_threads(int);
// Only OpenBLAS's pthread build has a thread pool to stop; weak, so that other BLAS builds link.
extern "C" int blas_thread_shutdown_() __attribute__((weak));

namespace xg {
namespace {
std::mutex g_mutex;
std::unique_ptr<tbb::global_control> g_control;
std::atomic<int> g_threads{0};

}  // namespace

namespace detail {
// BLAS must not run threads of its own on top of TBB's: GEMMs are split across TBB tasks. OpenBLAS's
// pthread build starts its pool when it is loaded and the pool thread spins for ~0.1 s before it
// sleeps, so the pool is stopped here, not just told to use one thread; with one thread OpenBLAS
// never restarts it. Called by a static initialiser below and by matmul (the initialiser alone is
// dropped when a program links nothing else of this file from the static library).
void ensure_blas_single_threaded() {
    static const bool once = [] {
        openblas_set_num_threads(1);
        if (blas_thread_shutdown_ != nullptr) blas_thread_shutdown_();
        return true;
    }();
    (void)once;
}
}  // namespace detail

namespace {
const bool g_blas_single_threaded_from_start = (detail::ensure_blas_single_threaded(), true);
}  // namespace

void set_num_threads(int n) {
    if (n < 1) throw ValueError("set_num_threads: thread count must be >= 1, got " + std::to_string(n));
    detail::ensure_blas_single_threaded();
    std::lock_guard<std::mutex> lock(g_mutex);
    g_control.reset();
    g_control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      static_cast<std::size_t>(n));
    g_threads = n;
}

int get_num_threads() {
    const int n = g_threads.load();
    return n > 0 ? n : tbb::info::default_concurrency();
}

}  // namespace xg

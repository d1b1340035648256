// xgrad-lab bench: forward and forward + backward (y = act(x); sum(y).backward()) in ns per element
// on 4M float32 elements, at 1 and 2 threads, the requested activations next to the built-ins.
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <vector>
#include <xgrad/xgrad.hpp>

#include "lab.hpp"

namespace lab {

namespace {

// Best time in ms of f over repetitions (at least 5, at most 40 or about 0.25 s).
template <class F>
double best_ms(F&& f) {
    f();  // warm-up: buffers into the caching allocator
    double best = 1e300, total = 0;
    for (int rep = 0; rep < 40 && (rep < 5 || total < 250.0); ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, ms);
        total += ms;
    }
    return best;
}

// The machine's copy bandwidth in bytes/ms (read + write) with `threads` threads, each copying one
// contiguous part: measured as STREAM does, on arrays far larger than the last-level cache (256 MiB
// each), so that it is the memory's bandwidth and not the cache's.
double copy_bandwidth(int threads) {
    const std::size_t bytes = std::size_t(256) << 20;
    std::vector<char> a(bytes, 1), b(bytes, 2);
    const std::size_t part = (bytes + threads - 1) / threads;
    tbb::task_arena arena(threads);
    const double ms = best_ms([&] {
        arena.execute([&] {
            tbb::parallel_for(
                0, threads,
                [&](int i) {
                    const std::size_t begin = std::min(bytes, i * part), end = std::min(bytes, begin + part);
                    std::memcpy(b.data() + begin, a.data() + begin, end - begin);
                },
                tbb::static_partitioner());
        });
    });
    return 2.0 * static_cast<double>(bytes) / ms;
}

// The whole of `text` as a count of 1 or more, or a ValueError naming the option.
std::int64_t positive_count(const std::string& text, const char* option_name) {
    std::size_t used = 0;
    std::int64_t v = 0;
    try {
        v = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || v < 1 || v > (std::int64_t(1) << 31))
        throw xg::ValueError(std::string(option_name) + " takes counts of 1 or more, got '" + text + "'");
    return v;
}

}  // namespace

int run_bench(const Args& args) {
    const auto pos = positional(args);
    std::vector<std::string> names = {"sigmoid", "tanh", "relu", "gelu", "silu"};
    if (!pos.empty())
        for (const auto& n : split_list(pos[0]))
            if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    const std::int64_t n = positive_count(option(args, "--n", std::to_string(4 << 20)), "--n");
    std::vector<int> threads;
    for (const auto& t : split_list(option(args, "--threads", "1,2")))
        threads.push_back(static_cast<int>(positive_count(t, "--threads")));
    const int before = xg::get_num_threads();

    // The memory-traffic floor of this benchmark at each thread count: whatever it fuses, forward +
    // backward must read x and write y (the caller holds it) and dx, 3 x 4 bytes per element, at
    // the machine's copy bandwidth with that many threads. (The sum of y need not read it, and a
    // saved f'(x) can become dx.) At 4M elements part of x and y stays in the last-level cache
    // between forward and backward, so a kernel can come in under this floor.
    const double elems = static_cast<double>(n);
    std::vector<double> bandwidth, floor_ms;
    for (int t : threads) {
        xg::set_num_threads(t);  // the same thread limit as the timings below
        bandwidth.push_back(copy_bandwidth(t));
        floor_ms.push_back(12.0 * elems / bandwidth.back());
    }

    xg::manual_seed(0);
    xg::Tensor x = xg::randn({n}, xg::f32).requires_grad_();
    std::cout << "y = act(x); y.sum().backward() on " << n << " float32 elements; best of repeated runs\n";
    std::cout << std::left << std::setw(16) << "activation" << std::right;
    for (int t : threads)
        std::cout << std::setw(10) << ("fwd@" + std::to_string(t)) << std::setw(12) << ("fwd+bwd@" + std::to_string(t))
                  << std::setw(10) << "ms" << std::setw(9) << "/floor";
    std::cout << "   (ns/element; ms = fwd+bwd; /floor: ms over the floor at that thread count)\n";
    for (const auto& name : names) {
        const auto fn = xg::get_activation(name);
        std::cout << std::left << std::setw(16) << name << std::right << std::fixed;
        for (std::size_t i = 0; i < threads.size(); ++i) {
            xg::set_num_threads(threads[i]);
            const double fwd = best_ms([&] {
                xg::NoGradGuard ng;
                xg::Tensor y = fn(x);
            });
            const double both = best_ms([&] {
                xg::Tensor y = fn(x);
                xg::sum(y).backward();
                x.zero_grad();
            });
            std::cout << std::setprecision(3) << std::setw(10) << fwd * 1e6 / elems << std::setw(12)
                      << both * 1e6 / elems << std::setprecision(2) << std::setw(10) << both << std::setw(8)
                      << both / floor_ms[i] << "x";
        }
        std::cout << "\n";
    }
    xg::set_num_threads(before);
    std::cout << std::setprecision(2)
              << "memory-traffic floor of fwd+bwd (3 x 4 bytes/element: read x, write y and dx, at the "
              << "machine's copy bandwidth, 256 MiB arrays, with that many threads):";
    for (std::size_t i = 0; i < threads.size(); ++i)
        std::cout << (i ? "," : "") << " " << floor_ms[i] << " ms at " << threads[i] << " (" << bandwidth[i] / 1e6
                  << " GB/s)";
    std::cout << "\n";
    return 0;
}

}  // namespace lab

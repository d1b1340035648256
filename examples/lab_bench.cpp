// xgrad-lab bench: forward and forward + backward (y = act(x); sum(y).backward()) in ns per element
// on 4M float32 elements, at 1 and 2 threads, the requested activations next to the built-ins.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iomanip>
#include <iostream>
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

// Copy bandwidth in bytes/ms (read + write) for arrays of `bytes`.
double copy_bandwidth(std::size_t bytes) {
    std::vector<char> a(bytes, 1), b(bytes, 2);
    const double ms = best_ms([&] { std::memcpy(b.data(), a.data(), bytes); });
    return 2.0 * static_cast<double>(bytes) / ms;
}

}  // namespace

int run_bench(const Args& args) {
    const auto pos = positional(args);
    std::vector<std::string> names = {"sigmoid", "tanh", "relu", "gelu", "silu"};
    if (!pos.empty())
        for (const auto& n : split_list(pos[0]))
            if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    const std::int64_t n = std::stoll(option(args, "--n", std::to_string(4 << 20)));
    std::vector<int> threads;
    for (const auto& t : split_list(option(args, "--threads", "1,2"))) threads.push_back(std::stoi(t));
    const int before = xg::get_num_threads();

    // The memory-traffic floor of this benchmark, on one core: whatever it fuses, forward +
    // backward must read x and write y (the caller holds it) and dx, 3 x 4 bytes per element, at
    // the copy bandwidth. (The sum of y need not read it, and a saved f'(x) can become dx.)
    const double elems = static_cast<double>(n);
    const double bw = copy_bandwidth(static_cast<std::size_t>(n) * 4);
    const double floor_ms = 12.0 * elems / bw;

    xg::manual_seed(0);
    xg::Tensor x = xg::randn({n}, xg::f32).requires_grad_();
    std::cout << "y = act(x); y.sum().backward() on " << n << " float32 elements; best of repeated runs\n";
    std::cout << std::left << std::setw(16) << "activation" << std::right;
    for (int t : threads)
        std::cout << std::setw(10) << ("fwd@" + std::to_string(t)) << std::setw(12) << ("fwd+bwd@" + std::to_string(t))
                  << std::setw(10) << "ms";
    std::cout << std::setw(10) << "/floor"
              << "   (ns/element; ms = fwd+bwd; /floor: the first ms over the floor)\n";
    for (const auto& name : names) {
        const auto fn = xg::get_activation(name);
        std::cout << std::left << std::setw(16) << name << std::right << std::fixed;
        double first_ms = 0;
        for (int t : threads) {
            xg::set_num_threads(t);
            const double fwd = best_ms([&] {
                xg::NoGradGuard ng;
                xg::Tensor y = fn(x);
            });
            const double both = best_ms([&] {
                xg::Tensor y = fn(x);
                xg::sum(y).backward();
                x.zero_grad();
            });
            if (first_ms == 0) first_ms = both;
            std::cout << std::setprecision(3) << std::setw(10) << fwd * 1e6 / elems << std::setw(12)
                      << both * 1e6 / elems << std::setprecision(2) << std::setw(10) << both;
        }
        std::cout << std::setw(9) << first_ms / floor_ms << "x\n";
    }
    xg::set_num_threads(before);
    std::cout << std::setprecision(2)
              << "memory-traffic floor of fwd+bwd on one core (3 x 4 bytes/element: read x, write y "
              << "and dx, at the copy bandwidth " << bw / 1e6 << " GB/s): " << floor_ms << " ms\n";
    return 0;
}

}  // namespace lab

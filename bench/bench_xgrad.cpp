// xgrad side of the benchmark suite. Workload names match bench_torch.cpp so the table can pair them.
#include <benchmark/benchmark.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>
#include <xgrad/nn/layers.hpp>
#include <xgrad/nn/loss.hpp>
#include <xgrad/nn/optim.hpp>
#include <xgrad/xgrad.hpp>

namespace {

// Peak resident memory of this process so far (each workload runs in its own process: tools/bench.sh).
void report_peak_rss(benchmark::State& state) {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    state.counters["peak_rss_MB"] = static_cast<double>(u.ru_maxrss) / 1024.0;
}

// Current resident memory of this process (from /proc/self/statm), in MB.
double current_rss_mb() {
    long pages_total = 0, pages_resident = 0;
    if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
        std::fclose(f);
    }
    return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}
double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

void configure(benchmark::State& state, int threads_arg) {
    xg::set_num_threads(static_cast<int>(state.range(threads_arg)));
}

// W3: x = tanh(x * w + b) repeated; 3 recorded ops per step. range(0) = elements, range(1) = threads.
void W3_chain_fwd_bwd(benchmark::State& state) {
    configure(state, 1);
    const std::int64_t n = state.range(0);
    constexpr int steps = 10000 / 3 + 1;
    xg::manual_seed(0);
    auto w = xg::full({n}, 0.5).requires_grad_();
    auto b = xg::full({n}, 0.1).requires_grad_();
    auto x0 = xg::randn({n});
    for (auto _ : state) {
        xg::Tensor x = x0;
        for (int i = 0; i < steps; ++i) x = xg::tanh(x * w + b);
        xg::sum(x).backward();
        w.zero_grad();
        b.zero_grad();
    }
    report_peak_rss(state);
    state.counters["ns_per_node"] =
        benchmark::Counter(3.0 * steps * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(W3_chain_fwd_bwd)->ArgsProduct({{1, 16}, {1, 2}})->Unit(benchmark::kMillisecond);

void W3_chain_fwd(benchmark::State& state) {
    configure(state, 1);
    const std::int64_t n = state.range(0);
    constexpr int steps = 10000 / 3 + 1;
    auto w = xg::full({n}, 0.5).requires_grad_();
    auto b = xg::full({n}, 0.1).requires_grad_();
    auto x0 = xg::randn({n});
    for (auto _ : state) {
        xg::Tensor x = x0;
        for (int i = 0; i < steps; ++i) x = xg::tanh(x * w + b);
        benchmark::DoNotOptimize(x);
    }
    report_peak_rss(state);
    state.counters["ns_per_node"] =
        benchmark::Counter(3.0 * steps * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(W3_chain_fwd)->ArgsProduct({{1, 16}, {1, 2}})->Unit(benchmark::kMillisecond);

// W4: Y = tanh(A.B).C, 1024x1024 float32, forward + backward. range(0) = threads.
void W4_tanh_gemm(benchmark::State& state) {
    configure(state, 0);
    xg::manual_seed(0);
    const std::int64_t n = 1024;
    auto A = xg::randn({n, n}).requires_grad_();
    auto B = xg::randn({n, n}).requires_grad_();
    auto C = xg::randn({n, n}).requires_grad_();
    for (auto _ : state) {
        auto Y = xg::matmul(xg::tanh(xg::matmul(A, B)), C);
        xg::sum(Y).backward();
        A.zero_grad(), B.zero_grad(), C.zero_grad();
    }
    report_peak_rss(state);
    state.counters["flops"] = 6.0 * 2 * n * n * n;  // per iteration: two GEMMs forward, four backward
}
BENCHMARK(W4_tanh_gemm)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

#if defined(__x86_64__)
// The machine's float32 FMA ceiling: independent AVX-512 FMA chains on each of range(0) threads,
// no memory traffic. No GEMM can run faster than this; W4's 1-thread row is measured against it.
__attribute__((target("avx512f"))) double fma_chains(long rounds) {
    const __m512 mul = _mm512_set1_ps(1.0000001f), add = _mm512_set1_ps(1e-7f);
    // 12 independent chains cover the FMA latency on both FMA pipes; named variables stay in registers.
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    for (long r = 0; r < rounds; ++r) {
        a0 = _mm512_fmadd_ps(a0, mul, add), a1 = _mm512_fmadd_ps(a1, mul, add), a2 = _mm512_fmadd_ps(a2, mul, add);
        a3 = _mm512_fmadd_ps(a3, mul, add), a4 = _mm512_fmadd_ps(a4, mul, add), a5 = _mm512_fmadd_ps(a5, mul, add);
        a6 = _mm512_fmadd_ps(a6, mul, add), a7 = _mm512_fmadd_ps(a7, mul, add), a8 = _mm512_fmadd_ps(a8, mul, add);
        a9 = _mm512_fmadd_ps(a9, mul, add), a10 = _mm512_fmadd_ps(a10, mul, add), a11 = _mm512_fmadd_ps(a11, mul, add);
    }
    const __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                                   _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))),
                                     _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(sum);
}
void PEAK_fma(benchmark::State& state) {
    if (!__builtin_cpu_supports("avx512f")) {
        state.SkipWithError("PEAK_fma needs AVX-512");
        return;
    }
    const int threads = static_cast<int>(state.range(0));
    constexpr long kRounds = 20'000'000;
    constexpr double kFlopsPerRound = 12 * 16 * 2;  // 12 chains of 16-lane FMAs: 7.7 GFLOP per thread
    for (auto _ : state) {
        std::vector<double> results(threads);
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) pool.emplace_back([&results, t] { results[t] = fma_chains(kRounds); });
        for (auto& th : pool) th.join();
        benchmark::DoNotOptimize(results.data());
    }
    state.counters["GFLOPS"] = benchmark::Counter(kFlopsPerRound * kRounds * threads * state.iterations(),
                                                  benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
BENCHMARK(PEAK_fma)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

// GEMM alone: 1024^3 float32, to compare with OpenBLAS's peak.
void GEMM_1024(benchmark::State& state) {
    configure(state, 0);
    auto A = xg::randn({1024, 1024}), B = xg::randn({1024, 1024});
    for (auto _ : state) benchmark::DoNotOptimize(xg::matmul(A, B));
    report_peak_rss(state);
    state.counters["GFLOPS"] = benchmark::Counter(2.0 * 1024 * 1024 * 1024 * state.iterations(),
                                                  benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
BENCHMARK(GEMM_1024)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Grouped convolutions, forward + backward of sum(conv2d(x, w, b)), 3x3, padding 1, stride 1:
// depthwise [128, 32, 28, 28] (32 groups of one channel) and [128, 64, 14, 14] -> 64 in 8 groups.
void CONV_grouped(benchmark::State& state) {
    configure(state, 1);
    xg::manual_seed(0);
    const std::int64_t groups = state.range(0), c = groups == 32 ? 32 : 64, hw = groups == 32 ? 28 : 14;
    auto x = xg::randn({128, c, hw, hw}).requires_grad_();
    auto w = xg::randn({c, c / groups, 3, 3}).requires_grad_();
    auto b = xg::randn({c}).requires_grad_();
    for (auto _ : state) {
        xg::sum(xg::conv2d(x, w, b, {1, 1}, {1, 1}, {1, 1}, groups)).backward();
        x.zero_grad();
        w.zero_grad();
        b.zero_grad();
    }
    report_peak_rss(state);
}
BENCHMARK(CONV_grouped)->ArgsProduct({{32, 8}, {1, 2}})->Unit(benchmark::kMillisecond);

// W2: y = act(x); y.sum().backward() on 4M float32. range(0) = threads. With output_alive the
// temporary act(x) lives until backward has returned (W2_<act>); without, only the loss is kept,
// as inside a model's forward (W2_<act>_dropped), and xgrad writes the gradient of an activation
// that saves its output into that output's buffer.
template <class F>
void activation_fwd_bwd(benchmark::State& state, F act, bool output_alive = true) {
    configure(state, 0);
    xg::manual_seed(0);
    auto x = xg::randn({4 << 20}).requires_grad_();
    for (auto _ : state) {
        if (output_alive) {
            xg::sum(act(x)).backward();
        } else {
            const xg::Tensor loss = xg::sum(act(x));
            loss.backward();
        }
        x.zero_grad();
    }
    report_peak_rss(state);
}
void W2_sigmoid(benchmark::State& s) {
    activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::sigmoid(x); });
}
void W2_tanh(benchmark::State& s) {
    activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::tanh(x); });
}
void W2_relu(benchmark::State& s) {
    activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::relu(x); });
}
void W2_gelu(benchmark::State& s) {
    activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::gelu(x); });
}
void W2_silu(benchmark::State& s) {
    activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::silu(x); });
}
BENCHMARK(W2_sigmoid)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_tanh)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_relu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_gelu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_silu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void W2_sigmoid_dropped(benchmark::State& s) {
    activation_fwd_bwd(
        s, [](const xg::Tensor& x) { return xg::sigmoid(x); }, false);
}
void W2_tanh_dropped(benchmark::State& s) {
    activation_fwd_bwd(
        s, [](const xg::Tensor& x) { return xg::tanh(x); }, false);
}
BENCHMARK(W2_sigmoid_dropped)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_tanh_dropped)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// W1: MLP 784-h1-h2-10 training step (ReLU, float32, cross-entropy, SGD momentum 0.9).
struct MlpStep {
    std::shared_ptr<xg::nn::Sequential> model;
    std::unique_ptr<xg::nn::SGD> opt;
    xg::Tensor x, y;
    MlpStep(std::int64_t batch, std::int64_t h1, std::int64_t h2) {
        xg::manual_seed(0);
        model = std::make_shared<xg::nn::Sequential>(std::initializer_list<std::shared_ptr<xg::nn::Module>>{
            std::make_shared<xg::nn::Linear>(784, h1), std::make_shared<xg::nn::Activation>("relu"),
            std::make_shared<xg::nn::Linear>(h1, h2), std::make_shared<xg::nn::Activation>("relu"),
            std::make_shared<xg::nn::Linear>(h2, 10)});
        opt = std::make_unique<xg::nn::SGD>(model->parameters(), xg::nn::SGDOptions{.lr = 0.01, .momentum = 0.9});
        x = xg::randn({batch, 784});
        y = xg::randint(0, 10, {batch});
    }
    void step() {
        opt->zero_grad();
        auto loss = xg::nn::cross_entropy(model->forward(x), y);
        loss.backward();
        opt->step();
    }
};

// W1 at batch 128, 784-512-256-10. range(0) = threads.
void W1_mlp_step(benchmark::State& state) {
    configure(state, 0);
    MlpStep w1(128, 512, 256);
    const auto before = xg::detail::concurrent_pass_count();
    for (auto _ : state) w1.step();
    // A chain: 0 (the single-threaded backward pass).
    state.counters["concurrent_passes"] = static_cast<double>(xg::detail::concurrent_pass_count() - before);
    report_peak_rss(state);
}
BENCHMARK(W1_mlp_step)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// Memory growth over W1 steps: resident memory (current and peak) after 10 and after 1,000 steps.
// The timing is of the 1,000 steps. range(0) = threads.
void W1_memory(benchmark::State& state) {
    configure(state, 0);
    MlpStep w1(128, 512, 256);
    for (auto _ : state) {
        for (int i = 0; i < 10; ++i) w1.step();
        state.counters["rss_10_MB"] = current_rss_mb();
        state.counters["peak_10_MB"] = peak_rss_mb();
        for (int i = 10; i < 1000; ++i) w1.step();
        state.counters["rss_1000_MB"] = current_rss_mb();
        state.counters["peak_1000_MB"] = peak_rss_mb();
    }
    state.counters["growth_MB"] = state.counters["rss_1000_MB"].value - state.counters["rss_10_MB"].value;
    report_peak_rss(state);
}
BENCHMARK(W1_memory)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(1);

// Scale sweep of W1 (784-h-h-10): range(0) = batch, range(1) = hidden width h, range(2) = threads.
// GFLOPS counts the GEMMs of forward and backward (no input gradient at the first layer).
double mlp_step_flops(double b, double h) {
    const double fwd = 2 * b * (784 * h + h * h + h * 10);
    return 2 * fwd + 2 * b * (h * h + h * 10);
}
void SWEEP_W1(benchmark::State& state) {
    configure(state, 2);
    const std::int64_t batch = state.range(0), h = state.range(1);
    MlpStep w1(batch, h, h);
    w1.step();  // warm-up: first-touch page faults and caches are not part of the timing
    for (auto _ : state) w1.step();
    report_peak_rss(state);
    state.counters["GFLOPS"] =
        benchmark::Counter(mlp_step_flops(static_cast<double>(batch), static_cast<double>(h)) * state.iterations(),
                           benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
BENCHMARK(SWEEP_W1)
    ->ArgsProduct({{1, 4, 16, 64, 256, 1024}, {512}, {1, 2}})
    ->ArgsProduct({{128}, {64, 256, 1024, 4096}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(0.2)
    ->UseRealTime();

// Scale sweep of W3: x = tanh(x * w + b) over range(0) recorded nodes (scalars), 1 thread.
void SWEEP_W3(benchmark::State& state) {
    configure(state, 1);
    const std::int64_t steps = state.range(0) / 3;
    auto w = xg::full({1}, 0.5).requires_grad_();
    auto b = xg::full({1}, 0.1).requires_grad_();
    auto x0 = xg::randn({1});
    auto pass = [&] {
        xg::Tensor x = x0;
        for (std::int64_t i = 0; i < steps; ++i) x = xg::tanh(x * w + b);
        xg::sum(x).backward();
        w.zero_grad();
        b.zero_grad();
    };
    pass();  // warm-up: the node pools and the allocator cache are filled outside the timing
    for (auto _ : state) pass();
    report_peak_rss(state);
    state.counters["ns_per_node"] =
        benchmark::Counter(3.0 * steps * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(SWEEP_W3)->ArgsProduct({{1000, 10000, 100000, 1000000}, {1}})->Unit(benchmark::kMillisecond)->MinTime(0.2);

// Branches: two independent matmul-tanh chains of n x n float32 summed, forward + backward.
// range(0) = n, range(1) = threads, range(2) = 1: branches of the backward pass run concurrently
// (set_concurrent_backward), 0: one node at a time (kernels alone use the threads), 2: concurrent
// with every node counted as heavy (detail::set_heavy_node_cost(0)): measures the threshold.
void BRANCH_two_chains(benchmark::State& state) {
    configure(state, 1);
    xg::set_concurrent_backward(state.range(2) != 0);
    if (state.range(2) == 2) xg::detail::set_heavy_node_cost(0);
    xg::manual_seed(0);
    const std::int64_t n = state.range(0);
    auto x = xg::randn({n, n}).requires_grad_();
    std::vector<xg::Tensor> w;
    for (int i = 0; i < 6; ++i) w.push_back((xg::randn({n, n}) * (1.0 / std::sqrt(double(n)))).requires_grad_());
    const auto before = xg::detail::concurrent_pass_count();
    for (auto _ : state) {
        xg::Tensor a = x, b = x;
        for (int i = 0; i < 3; ++i) {
            a = xg::tanh(xg::matmul(a, w[i]));
            b = xg::tanh(xg::matmul(b, w[3 + i]));
        }
        xg::sum(a + b).backward();
        x.zero_grad();
        for (auto& t : w) t.zero_grad();
    }
    state.counters["concurrent_passes"] = static_cast<double>(xg::detail::concurrent_pass_count() - before);
    xg::set_concurrent_backward(true);
    xg::detail::set_heavy_node_cost(xg::detail::kHeavyNodeCost);
    report_peak_rss(state);
}
BENCHMARK(BRANCH_two_chains)->ArgsProduct({{128, 256, 512}, {1, 2}, {0, 1}})->Unit(benchmark::kMillisecond);
// The threshold: at 2 threads, one node at a time against every node in a concurrent pass.
BENCHMARK(BRANCH_two_chains)
    ->Name("BRANCH_threshold")
    ->ArgsProduct({{16, 32, 64, 96, 128, 192}, {2}, {0, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// W5 / W6: one epoch (60,000 samples, batch 128, Adam 1e-3) of the Fashion-MNIST models of the
// main job on data of the same shape (the data set itself is not part of the timing).
void train_epoch(benchmark::State& state, const std::shared_ptr<xg::nn::Module>& model, const xg::Shape& sample_shape) {
    constexpr std::int64_t n = 60000, batch = 128;
    xg::nn::Adam opt(model->parameters(), {.lr = 1e-3});
    xg::Shape shape{n};
    shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
    auto images = xg::randn(shape);
    auto labels = xg::randint(0, 10, {n});
    for (auto _ : state) {
        for (std::int64_t b = 0; b + batch <= n; b += batch) {
            opt.zero_grad();
            auto loss = xg::nn::cross_entropy(model->forward(xg::slice(images, 0, b, b + batch)),
                                              xg::slice(labels, 0, b, b + batch));
            loss.backward();
            opt.step();
        }
    }
    report_peak_rss(state);
}
void W5_mlp_epoch(benchmark::State& state) {
    configure(state, 0);
    xg::manual_seed(0);
    using namespace xg::nn;
    auto model = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
        std::make_shared<Flatten>(), std::make_shared<Linear>(784, 256), std::make_shared<Activation>("relu"),
        std::make_shared<Linear>(256, 128), std::make_shared<Activation>("relu"), std::make_shared<Linear>(128, 10)});
    train_epoch(state, model, {1, 28, 28});
}
// Time per epoch over three epochs in a row: one epoch (0.3-0.6 s) swung by 10-20% between runs here.
BENCHMARK(W5_mlp_epoch)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(3);

void W6_cnn_epoch(benchmark::State& state) {
    configure(state, 0);
    xg::manual_seed(0);
    using namespace xg::nn;
    auto model = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
        std::make_shared<Conv2d>(1, 32, xg::Size2{3, 3}, Conv2dOptions{.padding = {1, 1}}),
        std::make_shared<Activation>("relu"), std::make_shared<MaxPool2d>(xg::Size2{2, 2}),
        std::make_shared<Conv2d>(32, 64, xg::Size2{3, 3}, Conv2dOptions{.padding = {1, 1}}),
        std::make_shared<Activation>("relu"), std::make_shared<MaxPool2d>(xg::Size2{2, 2}), std::make_shared<Flatten>(),
        std::make_shared<Linear>(3136, 128), std::make_shared<Activation>("relu"), std::make_shared<Linear>(128, 10)});
    train_epoch(state, model, {1, 28, 28});
}
BENCHMARK(W6_cnn_epoch)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(1);

// DP: a small model (64-32-32-10, tanh, batch 256) whose kernels are too small to split: one graph
// per step (DP_plain) against 8 shards built and back-propagated in parallel TBB tasks (DP_sharded).
std::shared_ptr<xg::nn::Module> small_mlp() {
    using namespace xg::nn;
    return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
        std::make_shared<Linear>(64, 32), std::make_shared<Activation>("tanh"), std::make_shared<Linear>(32, 32),
        std::make_shared<Activation>("tanh"), std::make_shared<Linear>(32, 10)});
}
void DP_plain(benchmark::State& state) {
    configure(state, 0);
    xg::manual_seed(0);
    auto model = small_mlp();
    xg::nn::SGD opt(model->parameters(), {.lr = 0.01, .momentum = 0.9});
    auto x = xg::randn({256, 64});
    auto y = xg::randint(0, 10, {256});
    for (auto _ : state) {
        opt.zero_grad();
        xg::nn::cross_entropy((*model)(x), y).backward();
        opt.step();
    }
    report_peak_rss(state);
}
BENCHMARK(DP_plain)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
void DP_sharded(benchmark::State& state) {
    configure(state, 0);
    xg::manual_seed(0);
    auto model = small_mlp();
    xg::nn::DataParallel dp(model, small_mlp, 8);
    xg::nn::SGD opt(model->parameters(), {.lr = 0.01, .momentum = 0.9});
    auto x = xg::randn({256, 64});
    auto y = xg::randint(0, 10, {256});
    for (auto _ : state) {
        opt.zero_grad();
        dp.forward_backward(x, y, [](const xg::Tensor& o, const xg::Tensor& t) { return xg::nn::cross_entropy(o, t); });
        opt.step();
    }
    report_peak_rss(state);
}
BENCHMARK(DP_sharded)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The machine's state for the two-thread figures: one cache line passed back and forth between two
// threads (no xgrad code). On this VM it takes ~160-250 ns per round trip in some hours and
// ~450-550 ns in others; in the slow hours two threads also slow each other's cache-bound work,
// and the DP speed-ups at 2 threads shrink. Reported as the round_trip_ns counter.
void DP_core_to_core_round_trip(benchmark::State& state) {
    alignas(64) std::atomic<std::int64_t> turn{0};
    constexpr std::int64_t kTrips = 100000;
    for (auto _ : state) {
        turn.store(0);
        std::thread other([&] {
            for (std::int64_t i = 0; i < kTrips; ++i) {
                while (turn.load(std::memory_order_acquire) != 2 * i + 1) {
                }
                turn.store(2 * i + 2, std::memory_order_release);
            }
        });
        const auto t0 = std::chrono::steady_clock::now();
        for (std::int64_t i = 0; i < kTrips; ++i) {
            turn.store(2 * i + 1, std::memory_order_release);
            while (turn.load(std::memory_order_acquire) != 2 * i + 2) {
            }
        }
        const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
        other.join();
        state.counters["round_trip_ns"] = ns / kTrips;
    }
}
BENCHMARK(DP_core_to_core_round_trip)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

// Per-sample graphs (W3-like: many small graphs): the small MLP on 64 samples, one graph per
// sample. DP_per_sample_plain builds them one after the other on one thread; DP_per_sample runs
// them as 64 shards of nn::DataParallel. range(0) = threads.
void DP_per_sample_plain(benchmark::State& state) {
    configure(state, 0);
    xg::manual_seed(0);
    auto model = small_mlp();
    xg::nn::SGD opt(model->parameters(), {.lr = 0.01, .momentum = 0.9});
    auto x = xg::randn({64, 64});
    auto y = xg::randint(0, 10, {64});
    for (auto _ : state) {
        opt.zero_grad();
        for (std::int64_t k = 0; k < 64; ++k)
            (xg::nn::cross_entropy((*model)(xg::slice(x, 0, k, k + 1)), xg::slice(y, 0, k, k + 1)) * (1.0 / 64))
                .backward();
        opt.step();
    }
    report_peak_rss(state);
}
BENCHMARK(DP_per_sample_plain)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
void DP_per_sample(benchmark::State& state) {
    configure(state, 0);
    xg::manual_seed(0);
    auto model = small_mlp();
    xg::nn::DataParallel dp(model, small_mlp, 64);
    xg::nn::SGD opt(model->parameters(), {.lr = 0.01, .momentum = 0.9});
    auto x = xg::randn({64, 64});
    auto y = xg::randint(0, 10, {64});
    for (auto _ : state) {
        opt.zero_grad();
        dp.forward_backward(x, y, [](const xg::Tensor& o, const xg::Tensor& t) { return xg::nn::cross_entropy(o, t); });
        opt.step();
    }
    report_peak_rss(state);
}
BENCHMARK(DP_per_sample)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

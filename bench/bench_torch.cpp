// LibTorch side of the benchmark suite: the same workloads as bench_xgrad.cpp, same names.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

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
    at::set_num_threads(static_cast<int>(state.range(threads_arg)));
}

void W3_chain_fwd_bwd(benchmark::State& state) {
    configure(state, 1);
    const std::int64_t n = state.range(0);
    constexpr int steps = 10000 / 3 + 1;
    torch::manual_seed(0);
    auto w = torch::full({n}, 0.5, torch::requires_grad());
    auto b = torch::full({n}, 0.1, torch::requires_grad());
    auto x0 = torch::randn({n});
    for (auto _ : state) {
        torch::Tensor x = x0;
        for (int i = 0; i < steps; ++i) x = torch::tanh(x * w + b);
        x.sum().backward();
        w.mutable_grad().reset();
        b.mutable_grad().reset();
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
    auto w = torch::full({n}, 0.5, torch::requires_grad());
    auto b = torch::full({n}, 0.1, torch::requires_grad());
    auto x0 = torch::randn({n});
    for (auto _ : state) {
        torch::Tensor x = x0;
        for (int i = 0; i < steps; ++i) x = torch::tanh(x * w + b);
        benchmark::DoNotOptimize(x);
    }
    report_peak_rss(state);
    state.counters["ns_per_node"] =
        benchmark::Counter(3.0 * steps * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(W3_chain_fwd)->ArgsProduct({{1, 16}, {1, 2}})->Unit(benchmark::kMillisecond);

void W4_tanh_gemm(benchmark::State& state) {
    configure(state, 0);
    torch::manual_seed(0);
    const std::int64_t n = 1024;
    auto A = torch::randn({n, n}, torch::requires_grad());
    auto B = torch::randn({n, n}, torch::requires_grad());
    auto C = torch::randn({n, n}, torch::requires_grad());
    for (auto _ : state) {
        auto Y = torch::matmul(torch::tanh(torch::matmul(A, B)), C);
        Y.sum().backward();
        A.mutable_grad().reset(), B.mutable_grad().reset(), C.mutable_grad().reset();
    }
    report_peak_rss(state);
    state.counters["flops"] = 6.0 * 2 * n * n * n;  // per iteration: two GEMMs forward, four backward
}
BENCHMARK(W4_tanh_gemm)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void GEMM_1024(benchmark::State& state) {
    configure(state, 0);
    auto A = torch::randn({1024, 1024}), B = torch::randn({1024, 1024});
    torch::NoGradGuard ng;
    for (auto _ : state) benchmark::DoNotOptimize(torch::matmul(A, B));
    report_peak_rss(state);
    state.counters["GFLOPS"] = benchmark::Counter(2.0 * 1024 * 1024 * 1024 * state.iterations(),
                                                  benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
BENCHMARK(GEMM_1024)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void CONV_grouped(benchmark::State& state) {
    configure(state, 1);
    torch::manual_seed(0);
    const std::int64_t groups = state.range(0), c = groups == 32 ? 32 : 64, hw = groups == 32 ? 28 : 14;
    auto x = torch::randn({128, c, hw, hw}, torch::requires_grad());
    auto w = torch::randn({c, c / groups, 3, 3}, torch::requires_grad());
    auto b = torch::randn({c}, torch::requires_grad());
    for (auto _ : state) {
        torch::conv2d(x, w, b, 1, 1, 1, groups).sum().backward();
        x.mutable_grad().reset();
        w.mutable_grad().reset();
        b.mutable_grad().reset();
    }
    report_peak_rss(state);
}
BENCHMARK(CONV_grouped)->ArgsProduct({{32, 8}, {1, 2}})->Unit(benchmark::kMillisecond);

// W2 (see bench_xgrad.cpp): output_alive false keeps only the loss until backward.
template <class F>
void activation_fwd_bwd(benchmark::State& state, F act, bool output_alive = true) {
    configure(state, 0);
    torch::manual_seed(0);
    auto x = torch::randn({4 << 20}, torch::requires_grad());
    for (auto _ : state) {
        if (output_alive) {
            act(x).sum().backward();
        } else {
            const torch::Tensor loss = act(x).sum();
            loss.backward();
        }
        x.mutable_grad().reset();
    }
    report_peak_rss(state);
}
void W2_sigmoid(benchmark::State& s) {
    activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::sigmoid(x); });
}
void W2_tanh(benchmark::State& s) {
    activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::tanh(x); });
}
void W2_relu(benchmark::State& s) {
    activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::relu(x); });
}
void W2_gelu(benchmark::State& s) {
    activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::gelu(x); });
}
void W2_silu(benchmark::State& s) {
    activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::silu(x); });
}
BENCHMARK(W2_sigmoid)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_tanh)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_relu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_gelu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_silu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void W2_sigmoid_dropped(benchmark::State& s) {
    activation_fwd_bwd(
        s, [](const torch::Tensor& x) { return torch::sigmoid(x); }, false);
}
void W2_tanh_dropped(benchmark::State& s) {
    activation_fwd_bwd(
        s, [](const torch::Tensor& x) { return torch::tanh(x); }, false);
}
BENCHMARK(W2_sigmoid_dropped)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_tanh_dropped)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// W1: MLP 784-h1-h2-10 training step (ReLU, float32, cross-entropy, SGD momentum 0.9).
struct MlpStep {
    torch::nn::Sequential model;
    std::unique_ptr<torch::optim::SGD> opt;
    torch::Tensor x, y;
    MlpStep(std::int64_t batch, std::int64_t h1, std::int64_t h2) {
        torch::manual_seed(0);
        model = torch::nn::Sequential(torch::nn::Linear(784, h1), torch::nn::ReLU(), torch::nn::Linear(h1, h2),
                                      torch::nn::ReLU(), torch::nn::Linear(h2, 10));
        opt = std::make_unique<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
        x = torch::randn({batch, 784});
        y = torch::randint(0, 10, {batch});
    }
    void step() {
        opt->zero_grad();
        auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
        loss.backward();
        opt->step();
    }
};

void W1_mlp_step(benchmark::State& state) {
    configure(state, 0);
    MlpStep w1(128, 512, 256);
    for (auto _ : state) w1.step();
    report_peak_rss(state);
}
BENCHMARK(W1_mlp_step)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

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

void SWEEP_W3(benchmark::State& state) {
    configure(state, 1);
    const std::int64_t steps = state.range(0) / 3;
    auto w = torch::full({1}, 0.5, torch::requires_grad());
    auto b = torch::full({1}, 0.1, torch::requires_grad());
    auto x0 = torch::randn({1});
    auto pass = [&] {
        torch::Tensor x = x0;
        for (std::int64_t i = 0; i < steps; ++i) x = torch::tanh(x * w + b);
        x.sum().backward();
        w.mutable_grad().reset();
        b.mutable_grad().reset();
    };
    pass();  // warm-up
    for (auto _ : state) pass();
    report_peak_rss(state);
    state.counters["ns_per_node"] =
        benchmark::Counter(3.0 * steps * state.iterations(), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(SWEEP_W3)->ArgsProduct({{1000, 10000, 100000, 1000000}, {1}})->Unit(benchmark::kMillisecond)->MinTime(0.2);

// Two independent matmul-tanh chains summed (LibTorch's CPU backward runs one node at a time;
// range(2) is accepted for the same names as the xgrad side and has no effect).
void BRANCH_two_chains(benchmark::State& state) {
    configure(state, 1);
    torch::manual_seed(0);
    const std::int64_t n = state.range(0);
    auto x = torch::randn({n, n}, torch::requires_grad());
    std::vector<torch::Tensor> w;
    for (int i = 0; i < 6; ++i)
        w.push_back((torch::randn({n, n}) * (1.0 / std::sqrt(double(n)))).set_requires_grad(true));
    for (auto _ : state) {
        torch::Tensor a = x, b = x;
        for (int i = 0; i < 3; ++i) {
            a = torch::tanh(torch::matmul(a, w[i]));
            b = torch::tanh(torch::matmul(b, w[3 + i]));
        }
        (a + b).sum().backward();
        x.mutable_grad().reset();
        for (auto& t : w) t.mutable_grad().reset();
    }
    report_peak_rss(state);
}
BENCHMARK(BRANCH_two_chains)->ArgsProduct({{128, 256, 512}, {1, 2}, {0, 1}})->Unit(benchmark::kMillisecond);

void train_epoch(benchmark::State& state, torch::nn::Sequential& model) {
    constexpr std::int64_t n = 60000, batch = 128;
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
    auto images = torch::randn({n, 1, 28, 28});
    auto labels = torch::randint(0, 10, {n});
    for (auto _ : state) {
        for (std::int64_t b = 0; b + batch <= n; b += batch) {
            opt.zero_grad();
            auto loss = torch::nn::functional::cross_entropy(model->forward(images.slice(0, b, b + batch)),
                                                             labels.slice(0, b, b + batch));
            loss.backward();
            opt.step();
        }
    }
    report_peak_rss(state);
}
void W5_mlp_epoch(benchmark::State& state) {
    configure(state, 0);
    torch::manual_seed(0);
    torch::nn::Sequential model(torch::nn::Flatten(), torch::nn::Linear(784, 256), torch::nn::ReLU(),
                                torch::nn::Linear(256, 128), torch::nn::ReLU(), torch::nn::Linear(128, 10));
    train_epoch(state, model);
}
// Time per epoch over three epochs in a row: one epoch (0.3-0.6 s) swung by 10-20% between runs here.
BENCHMARK(W5_mlp_epoch)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(3);

void W6_cnn_epoch(benchmark::State& state) {
    configure(state, 0);
    torch::manual_seed(0);
    namespace tn = torch::nn;
    tn::Sequential model(tn::Conv2d(tn::Conv2dOptions(1, 32, 3).padding(1)), tn::ReLU(), tn::MaxPool2d(2),
                         tn::Conv2d(tn::Conv2dOptions(32, 64, 3).padding(1)), tn::ReLU(), tn::MaxPool2d(2),
                         tn::Flatten(), tn::Linear(3136, 128), tn::ReLU(), tn::Linear(128, 10));
    train_epoch(state, model);
}
BENCHMARK(W6_cnn_epoch)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(1);

// DP_plain / DP_per_sample_plain: the small MLP (64-32-32-10, tanh) of the DataParallel cases on
// one graph per step (batch 256), and on 64 per-sample graphs per step (LibTorch has no CPU
// data-parallel step to compare DP_sharded / DP_per_sample with).
torch::nn::Sequential small_mlp() {
    return torch::nn::Sequential(torch::nn::Linear(64, 32), torch::nn::Tanh(), torch::nn::Linear(32, 32),
                                 torch::nn::Tanh(), torch::nn::Linear(32, 10));
}
void DP_plain(benchmark::State& state) {
    configure(state, 0);
    torch::manual_seed(0);
    auto model = small_mlp();
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
    auto x = torch::randn({256, 64});
    auto y = torch::randint(0, 10, {256});
    for (auto _ : state) {
        opt.zero_grad();
        torch::nn::functional::cross_entropy(model->forward(x), y).backward();
        opt.step();
    }
    report_peak_rss(state);
}
BENCHMARK(DP_plain)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
void DP_per_sample_plain(benchmark::State& state) {
    configure(state, 0);
    torch::manual_seed(0);
    auto model = small_mlp();
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
    auto x = torch::randn({64, 64});
    auto y = torch::randint(0, 10, {64});
    for (auto _ : state) {
        opt.zero_grad();
        for (std::int64_t k = 0; k < 64; ++k)
            (torch::nn::functional::cross_entropy(model->forward(x.slice(0, k, k + 1)), y.slice(0, k, k + 1)) *
             (1.0 / 64))
                .backward();
        opt.step();
    }
    report_peak_rss(state);
}
BENCHMARK(DP_per_sample_plain)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

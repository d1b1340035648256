// LibTorch side of the benchmark suite: the same workloads as bench_xgrad.cpp, same names.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <sys/resource.h>

namespace {

// Peak resident memory of this process so far (each workload runs in its own process: tools/bench.sh).
void report_peak_rss(benchmark::State& state) {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    state.counters["peak_rss_MB"] = static_cast<double>(u.ru_maxrss) / 1024.0;
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
}
BENCHMARK(W4_tanh_gemm)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void GEMM_1024(benchmark::State& state) {
    configure(state, 0);
    auto A = torch::randn({1024, 1024}), B = torch::randn({1024, 1024});
    torch::NoGradGuard ng;
    for (auto _ : state) benchmark::DoNotOptimize(torch::matmul(A, B));
    report_peak_rss(state);
    state.counters["GFLOPS"] = benchmark::Counter(2.0 * 1024 * 1024 * 1024 * state.iterations(), benchmark::Counter::kIsRate,
                                                  benchmark::Counter::kIs1000);
}
BENCHMARK(GEMM_1024)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

template <class F>
void activation_fwd_bwd(benchmark::State& state, F act) {
    configure(state, 0);
    torch::manual_seed(0);
    auto x = torch::randn({4 << 20}, torch::requires_grad());
    for (auto _ : state) {
        act(x).sum().backward();
        x.mutable_grad().reset();
    }
    report_peak_rss(state);
}
void W2_sigmoid(benchmark::State& s) { activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::sigmoid(x); }); }
void W2_tanh(benchmark::State& s) { activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::tanh(x); }); }
void W2_relu(benchmark::State& s) { activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::relu(x); }); }
BENCHMARK(W2_sigmoid)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_tanh)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_relu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void W1_mlp_step(benchmark::State& state) {
    configure(state, 0);
    torch::manual_seed(0);
    torch::nn::Sequential model(torch::nn::Linear(784, 512), torch::nn::ReLU(), torch::nn::Linear(512, 256),
                                torch::nn::ReLU(), torch::nn::Linear(256, 10));
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
    auto x = torch::randn({128, 784});
    auto y = torch::randint(0, 10, {128});
    for (auto _ : state) {
        opt.zero_grad();
        auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
        loss.backward();
        opt.step();
    }
    report_peak_rss(state);
}
BENCHMARK(W1_mlp_step)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

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
BENCHMARK(W5_mlp_epoch)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(1);

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

}  // namespace

BENCHMARK_MAIN();

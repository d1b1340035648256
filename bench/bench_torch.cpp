// LibTorch side of the benchmark suite: the same workloads as bench_xgrad.cpp, same names.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

namespace {

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
}
BENCHMARK(W4_tanh_gemm)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void GEMM_1024(benchmark::State& state) {
    configure(state, 0);
    auto A = torch::randn({1024, 1024}), B = torch::randn({1024, 1024});
    torch::NoGradGuard ng;
    for (auto _ : state) benchmark::DoNotOptimize(torch::matmul(A, B));
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
}
void W2_sigmoid(benchmark::State& s) { activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::sigmoid(x); }); }
void W2_tanh(benchmark::State& s) { activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::tanh(x); }); }
void W2_relu(benchmark::State& s) { activation_fwd_bwd(s, [](const torch::Tensor& x) { return torch::relu(x); }); }
BENCHMARK(W2_sigmoid)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_tanh)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_relu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

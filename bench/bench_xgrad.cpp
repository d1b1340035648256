// xgrad side of the benchmark suite. Workload names match bench_torch.cpp so the table can pair them.
#include <benchmark/benchmark.h>

#include <xgrad/xgrad.hpp>

namespace {

void configure(benchmark::State& state, int threads_arg) { xg::set_num_threads(static_cast<int>(state.range(threads_arg))); }

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
}
BENCHMARK(W4_tanh_gemm)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// GEMM alone: 1024^3 float32, to compare with OpenBLAS's peak.
void GEMM_1024(benchmark::State& state) {
    configure(state, 0);
    auto A = xg::randn({1024, 1024}), B = xg::randn({1024, 1024});
    for (auto _ : state) benchmark::DoNotOptimize(xg::matmul(A, B));
    state.counters["GFLOPS"] = benchmark::Counter(2.0 * 1024 * 1024 * 1024 * state.iterations(), benchmark::Counter::kIsRate,
                                                  benchmark::Counter::kIs1000);
}
BENCHMARK(GEMM_1024)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// W2: y = act(x); y.sum().backward() on 4M float32. range(0) = threads.
template <class F>
void activation_fwd_bwd(benchmark::State& state, F act) {
    configure(state, 0);
    xg::manual_seed(0);
    auto x = xg::randn({4 << 20}).requires_grad_();
    for (auto _ : state) {
        xg::sum(act(x)).backward();
        x.zero_grad();
    }
}
void W2_sigmoid(benchmark::State& s) { activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::sigmoid(x); }); }
void W2_tanh(benchmark::State& s) { activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::tanh(x); }); }
void W2_relu(benchmark::State& s) { activation_fwd_bwd(s, [](const xg::Tensor& x) { return xg::relu(x); }); }
BENCHMARK(W2_sigmoid)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_tanh)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(W2_relu)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

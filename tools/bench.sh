#!/usr/bin/env bash
# Builds and runs the benchmark suite (xgrad and, when libtorch-dev is installed, LibTorch) and
# prints one table: workload, xgrad, LibTorch, ratio, peak memory. Each workload runs in its own
# process so that its peak resident memory is its own. Usage: tools/bench.sh [W1 W2 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh --bench
cmake --preset bench >/dev/null
cmake --build --preset bench
out=build/bench/results
rm -rf "$out" && mkdir -p "$out"
workloads=("$@")
((${#workloads[@]})) || workloads=(W1 W2 W3 W4 GEMM W5 W6 DP)
echo "environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(nproc) cores; xgrad: TBB threads as listed," \
     "OpenBLAS single-threaded inside TBB tasks; LibTorch: at::set_num_threads as listed"
for w in "${workloads[@]}"; do
  build/bench/bench/xgrad_bench --benchmark_filter="^${w}_" --benchmark_out="$out/xgrad_$w.json" \
    --benchmark_out_format=json >/dev/null
  if [[ -x build/bench/bench/torch_bench ]]; then
    build/bench/bench/torch_bench --benchmark_filter="^${w}_" --benchmark_out="$out/torch_$w.json" \
      --benchmark_out_format=json >/dev/null
  fi
done
python3 bench/table.py "$out"

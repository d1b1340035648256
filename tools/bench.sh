#!/usr/bin/env bash
# Builds and runs the benchmark suite (xgrad and, when libtorch-dev is installed, LibTorch) and
# prints one table: workload, xgrad, LibTorch, ratio. Extra arguments go to both benchmark
# programs (e.g. --benchmark_filter=W3).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh --bench
cmake --preset bench >/dev/null
cmake --build --preset bench
out=build/bench/results
mkdir -p "$out"
echo "environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} nproc=$(nproc)"
build/bench/bench/xgrad_bench --benchmark_out="$out/xgrad.json" --benchmark_out_format=json "$@" >/dev/null
if [[ -x build/bench/bench/torch_bench ]]; then
  build/bench/bench/torch_bench --benchmark_out="$out/torch.json" --benchmark_out_format=json "$@" >/dev/null
fi
python3 bench/table.py "$out/xgrad.json" "$out/torch.json"

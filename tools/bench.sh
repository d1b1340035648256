#!/usr/bin/env bash
# Builds and runs the benchmark suite (xgrad and, when libtorch-dev is installed, LibTorch) and
# prints one table: workload, xgrad, LibTorch, ratio, peak memory. Each workload runs in its own
# process so that its peak resident memory is its own. Usage: tools/bench.sh [--rounds N] [W1 W2 ...]
# tools/bench.sh --sweep [--trial]: the scale sweep instead (W1 over batch and width, W3 over
# 10^3..10^6 nodes, both sides, ~5 minutes); writes its table and bench/sweep.svg into bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=0
rounds=1
trial=()
while [[ "${1:-}" == --* ]]; do
  case "$1" in
    --sweep) sweep=1 && shift ;;
    --trial) trial=(--trial) && shift ;;
    --rounds) rounds=${2:?--rounds needs a count} && shift 2 ;;
    *) echo "tools/bench.sh: unknown option $1" >&2 && exit 2 ;;
  esac
done
tools/deps.sh --bench
cmake --preset bench >/dev/null
cmake --build --preset bench
out=build/bench/results
rm -rf "$out" && mkdir -p "$out"
workloads=("$@")
((${#workloads[@]})) || workloads=(W1 W2 W3 W4 GEMM PEAK W5 W6 DP BRANCH CONV)
# OpenBLAS picks its kernels from OPENBLAS_CORETYPE when the library loads. On an AVX-512 machine
# its SkylakeX kernels run SGEMM about 1.7x faster than the Haswell ones (GEMM_1024 at 1 thread:
# 12.8 vs 21.3 ms here); both sides get the same setting, and the table's header prints it.
if grep -qw avx512f /proc/cpuinfo && [[ "${OPENBLAS_CORETYPE:-}" != SkylakeX && -z "${XGRAD_KEEP_CORETYPE:-}" ]]; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
# LibTorch 1.13 picks its AVX2 kernels on this AMD CPU even though it ships AVX-512 ones (its
# dispatch reads ATEN_CPU_CAPABILITY); with them forced, its activations run about twice as fast
# (W2 at 1 thread, ms, auto -> avx512, 2026-11-23: sigmoid 5.4-5.9 -> 2.4-2.9, tanh 12.2-14.4 ->
# 6.7-6.9, silu 5.7-7.9 -> 2.9-4.1; the GEMM workloads within noise). That is LibTorch's best here.
if grep -qw avx512bw /proc/cpuinfo && [[ -z "${ATEN_CPU_CAPABILITY:-}" ]]; then
  export ATEN_CPU_CAPABILITY=avx512
fi
# glibc's malloc hands large freed blocks back to the kernel (munmap, heap trimming), so LibTorch,
# which allocates every 4-16 MB tensor through it, page-faults its buffers in again on every step:
# W4 at 1 thread took 71-108 ms that way and 42-46 ms with these two settings, W2_silu 5.6-60 ms
# against 5.6-5.8 (2026-11-23). They are LibTorch's best here; xgrad (its own caching pool) is
# within noise either way. Both sides run with them.
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-33554432} MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-4294967295}
echo "environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $(nproc) cores," \
     "ATEN_CPU_CAPABILITY=${ATEN_CPU_CAPABILITY:-auto}," \
     "MALLOC_MMAP_THRESHOLD_=$MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_=$MALLOC_TRIM_THRESHOLD_;" \
     "xgrad: TBB threads as listed, OpenBLAS single-threaded inside TBB tasks;" \
     "LibTorch: at::set_num_threads as listed, OpenBLAS with its own $(nproc) threads"
if ((sweep)); then
  # One process per point, so that each peak resident memory is the point's own.
  for bin in xgrad torch; do
    exe=build/bench/bench/${bin}_bench
    [[ -x "$exe" ]] || continue
    i=0
    while read -r name; do
      "$exe" --benchmark_filter="^${name}\$" --benchmark_out="$out/${bin}_SWEEP_$((i++)).json" \
        --benchmark_out_format=json >/dev/null
    done < <("$exe" --benchmark_list_tests --benchmark_filter='^SWEEP_')
  done
  python3 bench/sweep.py "$out" "${trial[@]}"
  exit 0
fi
# With --rounds N the whole list runs N times, the two sides in turn, and the table keeps each
# row's best time: on this shared VM one side's run can land in a slow minute (W2_sigmoid/1 at
# 1.8-2.2 ms for xgrad and 2.3-3.3 for LibTorch over three rounds, 2026-11-23).
for ((r = 1; r <= rounds; r++)); do
  for w in "${workloads[@]}"; do
    build/bench/bench/xgrad_bench --benchmark_filter="^${w}_" --benchmark_out="$out/xgrad_$w.r$r.json" \
      --benchmark_out_format=json >/dev/null
    if [[ -x build/bench/bench/torch_bench ]]; then
      build/bench/bench/torch_bench --benchmark_filter="^${w}_" --benchmark_out="$out/torch_$w.r$r.json" \
        --benchmark_out_format=json >/dev/null
      # LibTorch's OpenBLAS starts its own threads whatever at::set_num_threads says, so its "1 thread"
      # GEMMs run on both cores; the workloads built on GEMMs run once more with OpenBLAS on one thread.
      if [[ " W1 W4 GEMM W5 W6 BRANCH CONV " == *" $w "* ]]; then
        OPENBLAS_NUM_THREADS=1 build/bench/bench/torch_bench --benchmark_filter="^${w}_" \
          --benchmark_out="$out/torch1_$w.r$r.json" --benchmark_out_format=json >/dev/null
      fi
    fi
  done
done
python3 bench/table.py "$out"

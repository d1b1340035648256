#!/usr/bin/env bash
# Command 1 of the README: installs what is missing, builds xgrad and runs the main job
# (training on Fashion-MNIST). Extra arguments go to the training program.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
# AVX-512 machines: OpenBLAS's SkylakeX kernels (about 1.7x faster SGEMM than the Haswell ones some
# environments force). Set XGRAD_KEEP_CORETYPE=1 to keep the environment's choice.
if grep -qw avx512f /proc/cpuinfo && [[ -z "${XGRAD_KEEP_CORETYPE:-}" ]]; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
exec build/release/examples/fashion_mnist "$@"

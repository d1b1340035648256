#!/usr/bin/env bash
# Installs the Debian packages xgrad needs that are missing (non-interactive; idempotent).
# Usage: tools/deps.sh [--bench]   (--bench adds Google Benchmark and LibTorch for bench/)
set -euo pipefail
# clang, its sanitizer runtimes and llvm (llvm-symbolizer, llvm-addr2line): the sanitizer build of
# tools/test.sh (CMakePresets.json, "asan").
packages=(g++ cmake make ccache libxtensor-dev xtl-dev libxsimd-dev libtbb-dev libboost-test-dev
          libopenblas-pthread-dev zlib1g-dev nlohmann-json3-dev dataset-fashion-mnist graphviz gnuplot-nox
          clang libclang-rt-14-dev llvm)
if [[ "${1:-}" == "--bench" ]]; then packages+=(libbenchmark-dev libtorch-dev); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "xgrad: installing missing packages: ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

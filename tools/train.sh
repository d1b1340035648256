#!/usr/bin/env bash
# Command 1 of the README: installs what is missing, builds xgrad and runs the main job
# (training on Fashion-MNIST). Extra arguments go to the training program.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
exec build/release/examples/fashion_mnist "$@"

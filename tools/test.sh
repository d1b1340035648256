#!/usr/bin/env bash
# Command 2 of the README: installs what is missing, builds and runs the whole test suite, then
# the same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --workflow --preset release
cmake --workflow --preset asan

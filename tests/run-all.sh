#!/bin/bash
# run-all.sh - the whole test suite, as CI runs it: installs dependencies, builds, and runs
# every unit, integration and end-to-end test (as root, against the real kernel).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "run-all.sh: run as root (integration tests use the real kernel)" >&2; exit 1; }
bash deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
ninja -C build
# Formatting is part of the build's contract (Google style, .clang-format).
bash tests/check-format.sh
ctest --test-dir build --output-on-failure --timeout 600 --no-tests=error

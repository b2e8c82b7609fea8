#!/bin/bash
# check-format.sh - fails when a C++ source differs from clang-format's output (.clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format.sh: clang-format missing" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cc' '*.h' 2>/dev/null || find services cmd tests -name '*.cc' -o -name '*.h')
clang-format --dry-run --Werror "${files[@]}"
echo "check-format.sh: ${#files[@]} files formatted"

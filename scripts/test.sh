#!/usr/bin/env bash
# test.sh - install missing packages, configure and build build/
# (RelWithDebInfo), and run the whole test suite. Exits with ctest's status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCK_BUILD_TESTS=ON
cmake --build build -j"$(nproc)"
rc=0
ctest --test-dir build --output-on-failure -j2 || rc=$?
exit "$rc"

#!/usr/bin/env bash
# demo.sh - install missing packages, build the ckstore tool in build/, and
# walk through a short demonstration in a scratch directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)" --target ckstore_cli
bash scripts/demo-steps.sh build/ckstore

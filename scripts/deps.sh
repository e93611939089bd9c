#!/usr/bin/env bash
# deps.sh [--ci] - install the Debian 12 packages ckstore needs, only those
# that are missing. --ci adds the tools CI uses (clang with its sanitizer and
# libFuzzer runtimes, valgrind, clang-format, cppcheck, scan-build).
# Non-interactive: safe to run with no terminal and no standard input.
set -euo pipefail

packages=(build-essential cmake pkg-config liblmdb-dev libsodium-dev libmsgpack-dev
          libjansson-dev libutf8proc-dev libcmocka-dev lmdb-utils)
case "${1:-}" in
    --ci) packages+=(clang libclang-rt-14-dev valgrind clang-format cppcheck clang-tools) ;;
    "") ;;
    *) echo "usage: $0 [--ci]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages already installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    # With no terminal sudo cannot ask for a password: fail rather than hang.
    if [ -t 0 ]; then as_root=(sudo); else as_root=(sudo -n); fi
else
    echo "deps: missing packages (${missing[*]}) and not root, and sudo is not available: install them as root" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null

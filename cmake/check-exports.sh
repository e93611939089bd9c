#!/usr/bin/env bash
# check-exports.sh LIB - fail if the shared library exports a symbol that is
# not public API: every exported name must start with ck_ and must not hold
# a double underscore (ck_<module>__<verb> names are internal). Also fails
# when the library exports nothing at all.
set -euo pipefail
lib=${1:?usage: check-exports.sh libckstore.so}
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ { print $3 }')
if [ -z "$syms" ]; then
    echo "check-exports: $lib exports no symbols" >&2
    exit 1
fi
bad=$(printf '%s\n' "$syms" | awk '!/^ck_/ || /__/')
if [ -n "$bad" ]; then
    echo "check-exports: $lib exports symbols that are not public API:" >&2
    printf '%s\n' "$bad" | sed 's/^/  /' >&2
    exit 1
fi
echo "check-exports: $(printf '%s\n' "$syms" | wc -l) symbols, all public ck_*"

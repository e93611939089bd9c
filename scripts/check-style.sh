#!/usr/bin/env bash
# check-style.sh - the project's static checks, all of which must pass:
#   1. no banned C library calls (unbounded or error-blind: sprintf, strcpy,
#      strcat, gets, atoi/atol/atoll, strtok; use snprintf, memcpy with a
#      checked length, strtol/strtoull, strtok_r)
#   2. clang-format: every .c/.h is formatted as .clang-format says
#   3. cppcheck: no warning or portability finding in core/ and cli/
# Run from anywhere; exits non-zero when any check fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dirs=()
for d in core cli include tests bench; do
    [ -d "$d" ] && dirs+=("$d")
done
failed=0

# Every C source and header, the fuzz corpus excluded, NUL-separated.
list_sources() {
    [ ${#dirs[@]} -gt 0 ] || return 0
    find "${dirs[@]}" -path tests/fuzz/corpus -prune -o \
        -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z
}

# 1. Banned calls.
banned='\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|atoll|strtok)[[:space:]]*\('
hits=$(list_sources | xargs -0 -r grep -nHE "$banned" || true)
if [ -n "$hits" ]; then
    echo "check-style: banned calls (use snprintf, bounded copies, strtol/strtoull, strtok_r):" >&2
    printf '%s\n' "$hits" >&2
    failed=1
else
    echo "check-style: no banned calls"
fi

# 2. clang-format.
if ! command -v clang-format >/dev/null 2>&1; then
    echo "check-style: clang-format not found (bash scripts/deps.sh --ci)" >&2
    failed=1
elif ! list_sources | xargs -0 -r clang-format --dry-run --Werror; then
    echo "check-style: files above are not clang-formatted (run clang-format -i on them)" >&2
    failed=1
else
    echo "check-style: clang-format clean"
fi

# 3. cppcheck.
cpp_dirs=()
for d in core cli; do
    [ -d "$d" ] && cpp_dirs+=("$d")
done
if ! command -v cppcheck >/dev/null 2>&1; then
    echo "check-style: cppcheck not found (bash scripts/deps.sh --ci)" >&2
    failed=1
elif [ ${#cpp_dirs[@]} -gt 0 ]; then
    if ! cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
        --std=c11 --suppress=missingIncludeSystem -j "$(nproc)" \
        -I include -I core "${cpp_dirs[@]}"; then
        echo "check-style: cppcheck found problems (above)" >&2
        failed=1
    else
        echo "check-style: cppcheck clean"
    fi
fi

if [ "$failed" -ne 0 ]; then
    echo "check-style: FAILED" >&2
    exit 1
fi
echo "check-style: all checks passed"

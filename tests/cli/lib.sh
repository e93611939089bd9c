# lib.sh - helpers for the end-to-end tests of the ckstore CLI.
# Sourced by tests/cli/*.sh; CKSTORE_BIN names the binary under test.
set -euo pipefail

CK=${CKSTORE_BIN:?CKSTORE_BIN must name the ckstore binary}
T=$(mktemp -d "${CK_TEST_TMPDIR:-/tmp}/ck-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
# Never inherit a store or key from the environment running the tests.
unset CKSTORE_DIR CKSTORE_KEY_FILE CKSTORE_PASSPHRASE CKSTORE_NEW_PASSPHRASE
FAILS=0
PASSES=0

# expect_rc CODE CMD... : run CMD (stdin closed), check its exit code; its
# stdout is left in $T/out and stderr in $T/err.
expect_rc() {
    local want=$1
    shift
    local got=0
    "$@" </dev/null >"$T/out" 2>"$T/err" || got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL: expected exit $want, got $got: $*" >&2
        sed 's/^/  stdout: /' "$T/out" >&2
        sed 's/^/  stderr: /' "$T/err" >&2
        FAILS=$((FAILS + 1))
        return 0
    fi
    PASSES=$((PASSES + 1))
}

# expect_out PATTERN : the last command's stdout matches the extended regex.
expect_out() {
    if grep -Eq -- "$1" "$T/out"; then
        PASSES=$((PASSES + 1))
    else
        echo "FAIL: stdout does not match /$1/:" >&2
        sed 's/^/  stdout: /' "$T/out" >&2
        FAILS=$((FAILS + 1))
    fi
}

# expect_err PATTERN : the last command's stderr matches.
expect_err() {
    if grep -Eq -- "$1" "$T/err"; then
        PASSES=$((PASSES + 1))
    else
        echo "FAIL: stderr does not match /$1/:" >&2
        sed 's/^/  stderr: /' "$T/err" >&2
        FAILS=$((FAILS + 1))
    fi
}

# digest DIR : one hash of every file's name and contents.
digest() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)
}

finish() {
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}

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
    cat "$T/err" >>"$T/all-stderr"
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

# fail MESSAGE / ok : count a check of the script's own.
fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}
ok() { PASSES=$((PASSES + 1)); }

# JSON checks go to one Python process, started on first use: starting
# one per check is slow.
pyjson_start() {
    coproc PYJSON {
    python3 -u -c '
import json, sys
for line in sys.stdin:
    kind, path, expr = line.rstrip("\n").split("\t", 2)
    try:
        rows = [json.loads(l) for l in open(path) if l.strip()]
        d = rows[0] if len(rows) == 1 else None
        v = eval(expr)
        out = ("ok" if v else "no") if kind == "check" else "=" + str(v)
    except Exception as e:
        out = "error: " + repr(e)
    print(out.replace("\n", " "))
'
    }
}
# pyjson KIND EXPR : evaluate EXPR on the last stdout - `d` the object, or
# `rows` the objects of JSON Lines - into $PYJSON_REPLY; KIND check says
# ok / no, KIND value gives "=" and the value.
pyjson() {
    [ -n "${PYJSON_PID:-}" ] || pyjson_start
    printf '%s\t%s\t%s\n' "$1" "$T/out" "$2" >&"${PYJSON[1]}"
    IFS= read -r PYJSON_REPLY <&"${PYJSON[0]}"
}

# expect_json PYEXPR : the last stdout makes the Python expression true.
expect_json() {
    pyjson check "$1"
    if [ "$PYJSON_REPLY" = ok ]; then
        ok
    else
        fail "stdout does not satisfy: $1 ($PYJSON_REPLY)"
        sed 's/^/  stdout: /' "$T/out" >&2
    fi
}

# json_of KEY VAR : set VAR to the top-level member KEY of the last stdout.
json_of() {
    pyjson value "d[\"$1\"]"
    printf -v "$2" '%s' "${PYJSON_REPLY#=}"
}

# never_on_stderr VALUE... : customer values of the script's test data,
# which no error or warning may ever print; finish() checks the stderr of
# every command expect_rc ran, for these and for anything shaped like an
# e-mail address (every script's test data has some; a message never does).
SECRET_VALUES=()
never_on_stderr() { SECRET_VALUES+=("$@"); }

stderr_holds_no_value() {
    local all="$T/all-stderr" v hit
    [ -s "$all" ] || return 0
    if hit=$(grep -Eo '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+' "$all" | head -1) &&
        [ -n "$hit" ]; then
        fail "an error message quotes an e-mail address ($hit)"
    else
        ok
    fi
    for v in "${SECRET_VALUES[@]}"; do
        if grep -Fq -- "$v" "$all"; then
            fail "an error message quotes a test value ($v)"
        else
            ok
        fi
    done
}

finish() {
    stderr_holds_no_value
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}

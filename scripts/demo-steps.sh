#!/usr/bin/env bash
# demo-steps.sh CKSTORE - the demonstration run by scripts/demo.sh.
#
# $1 is the path of the ckstore binary. Everything happens in a scratch
# directory made with mktemp -d and removed at the end; nothing outside it
# is touched. (Placeholder: the full walk-through is still to be written.)
set -euo pipefail

CK=$(realpath "${1:?usage: demo-steps.sh path/to/ckstore}")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ckstore-demo.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

"$CK" --help

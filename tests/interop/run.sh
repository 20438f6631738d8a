#!/usr/bin/env bash
# Check reg against real torch, Lightning and safetensors (see README.md here).
#
#   tests/interop/run.sh [-k SUBSTR] [-v]
#
# REG_INTEROP_VENV  the Python venv to use or make
#                   (default ~/.cache/reg-interop/venv, outside the clone)
# REG_INTEROP_PYTHON  the python that makes it (default python3)
# REG_BIN           a reg binary to test (default: cargo build --release --locked)
#
# The last line printed is always `N passed, M failed`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${REG_INTEROP_VENV:-$HOME/.cache/reg-interop/venv}"
cache="$(dirname "$venv")"
python="${REG_INTEROP_PYTHON:-python3}"

scratch=""
summary_printed=""
finish() {
    rc=$?
    if [[ -n "$scratch" ]]; then rm -rf "$scratch"; fi
    if [[ -z "$summary_printed" ]]; then
        # Setup failed before check.py could count anything: say so in the
        # form CI reads.
        echo "interop: stopped before the checks could be counted (exit $rc)" >&2
        echo "0 passed, 1 failed"
        [[ $rc -ne 0 ]] || rc=1
    fi
    exit "$rc"
}
trap finish EXIT

# ---------------------------------------------------------------- the venv
# The libraries the suites use, pinned to the versions the fixtures were
# made with; a venv without them (or with other versions) is made again.
requirements=(torch==2.15.0 lightning==2.6.6 transformers==5.24.0 accelerate==1.15.0 safetensors)
deps_ok() {
    [[ -x "$venv/bin/python" ]] && "$venv/bin/python" - <<'PY' 2>/dev/null
import torch, lightning, transformers, accelerate, safetensors
assert torch.__version__.split("+")[0] == "2.15.0", torch.__version__
assert lightning.__version__ == "2.6.6" and transformers.__version__ == "5.24.0"
PY
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
if command -v flock >/dev/null; then flock 9; fi # one run makes the venv at a time
if deps_ok; then
    echo "interop: reusing $venv"
else
    if [[ -e "$venv" ]]; then
        if [[ ! -f "$venv/pyvenv.cfg" ]]; then
            echo "interop: $venv exists and is not a venv; remove it or set REG_INTEROP_VENV" >&2
            exit 1
        fi
        echo "interop: $venv is incomplete; making it again"
        rm -rf "$venv"
    fi
    echo "interop: making $venv with $("$python" --version 2>&1) (first run: ~1.5 min, ~5.4 GiB)"
    start=$SECONDS
    "$python" -m venv "$venv"
    # torch from PyPI: the CPU-only wheel index is not reachable here. The
    # pip cache stays beside the venv, out of the clone.
    PIP_CACHE_DIR="$cache/pip" "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${requirements[@]}"
    echo "interop: venv ready in $((SECONDS - start)) s"
fi
exec 9>&-
"$venv/bin/python" - <<'EOF'
import sys, torch, lightning, safetensors, transformers
print(f"interop: python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"lightning {lightning.__version__}, transformers {transformers.__version__}, "
      f"safetensors {safetensors.__version__}")
EOF

# ---------------------------------------------------------------- reg
if [[ -z "${REG_BIN:-}" ]]; then
    (cd "$root" && cargo build --release --locked)
    target="${CARGO_TARGET_DIR:-target}"
    [[ "$target" = /* ]] || target="$root/$target"
    REG_BIN="$target/release/reg"
fi
[[ -x "$REG_BIN" ]] || { echo "interop: no reg binary at $REG_BIN" >&2; exit 1; }
echo "interop: reg = $REG_BIN"

# ---------------------------------------------------------------- the checks
scratch="$(mktemp -d "${TMPDIR:-/tmp}/reg-interop.XXXXXX")"
rc=0
"$venv/bin/python" "$here/check.py" --reg "$REG_BIN" --fixtures "$root/tests/fixtures" \
    --scratch "$scratch" "$@" 2>&1 | tee "$scratch/check.log" || rc=$?
last="$(tail -n 1 "$scratch/check.log")"
if ! grep -Eq '^[0-9]+ passed, [0-9]+ failed$' <<<"$last"; then
    echo "interop: check.py died before its summary (exit $rc)" >&2
    exit "$rc"
fi

# Further suites (tests/interop/suites/*.sh, in name order): each gets
# the venv, the binary and a scratch folder of its own, and ends with a
# line `N passed, M failed`. -k and -v are for check.py only.
passed=0
failed=0
read -r p1 _ f1 _ <<<"$last"
passed=$((passed + p1))
failed=$((failed + f1))
suite_rc=0
for suite in "$here"/suites/*.sh; do
    [[ -e "$suite" ]] || continue
    name="$(basename "$suite" .sh)"
    echo "interop: suite $name"
    mkdir -p "$scratch/$name"
    src=0
    VENV="$venv" REG_BIN="$REG_BIN" ROOT="$root" SCRATCH="$scratch/$name" \
        bash "$suite" 2>&1 | tee "$scratch/$name.log" || src=$?
    slast="$(tail -n 1 "$scratch/$name.log")"
    if ! grep -Eq '^[0-9]+ passed, [0-9]+ failed$' <<<"$slast"; then
        echo "interop: suite $name died before its summary (exit $src)" >&2
        slast="0 passed, 1 failed"
        src=1
    fi
    read -r sp _ sf _ <<<"$slast"
    passed=$((passed + sp))
    failed=$((failed + sf))
    [[ $src -eq 0 && $sf -eq 0 ]] || suite_rc=1
done

summary_printed=1
echo "$passed passed, $failed failed"
[[ $rc -eq 0 && $suite_rc -eq 0 ]] || exit 1

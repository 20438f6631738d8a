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
deps_ok() { [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import torch, lightning, safetensors" 2>/dev/null; }

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
        torch lightning safetensors
    echo "interop: venv ready in $((SECONDS - start)) s"
fi
exec 9>&-
"$venv/bin/python" - <<'EOF'
import sys, torch, lightning, safetensors
print(f"interop: python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"lightning {lightning.__version__}, safetensors {safetensors.__version__}")
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

# The Lightning plugin (python/reg_lightning) with real Lightning: train,
# push every epoch, resume from reg://, fail loudly when pushes fail.
echo "interop: reg_lightning plugin"
prc=0
REG_BIN="$REG_BIN" REG_LIGHTNING_CACHE="$scratch/cache" "$venv/bin/python" "$root/python/tests/test_plugin.py" \
    2>&1 | grep -v -E "Warning|warnings.warn|^  " | tee "$scratch/plugin.log" || prc=$?
plast="$(tail -n 1 "$scratch/plugin.log")"
grep -Eq '^[0-9]+ passed, [0-9]+ failed$' <<<"$plast" || { plast="0 passed, 1 failed"; prc=1; }

read -r p1 _ f1 _ <<<"$last"
read -r p2 _ f2 _ <<<"$plast"
summary_printed=1
echo "$((p1 + p2)) passed, $((f1 + f2)) failed"
[[ $rc -eq 0 && $prc -eq 0 ]] || exit 1

#!/usr/bin/env bash
# Build the reg-checkpoints wheel from this checkout into OUT_DIR and print
# its path (the last line). Used by the interop suites 30 and 31.
#
#   python/tests/build-wheel.sh OUT_DIR [PYTHON]
#
# pip's PEP 517 build: maturin (pinned in python/pyproject.toml) from
# PyPI in an isolated build env, then `cargo build --release --locked` of
# crates/reg-cli in the workspace's target/ (CARGO_TARGET_DIR if set), so a
# binary CI built already is only relinked, stripped, into the wheel.
set -euo pipefail
out="$1"
python="${2:-python3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# pip runs the build in python/: a relative CARGO_TARGET_DIR means the
# repository's, as for run.sh's cargo build.
if [[ -n "${CARGO_TARGET_DIR:-}" && "$CARGO_TARGET_DIR" != /* ]]; then
    export CARGO_TARGET_DIR="$root/$CARGO_TARGET_DIR"
fi
mkdir -p "$out"
rm -f "$out"/reg_checkpoints-*.whl
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$out" "$here/.." >&2
ls "$out"/reg_checkpoints-*.whl

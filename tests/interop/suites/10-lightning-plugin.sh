#!/usr/bin/env bash
# The Lightning plugin (python/reg_lightning) with real Lightning: train,
# push every epoch, resume from reg://, fail loudly when pushes fail.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail
REG_BIN="$REG_BIN" REG_LIGHTNING_CACHE="$SCRATCH/cache" "$VENV/bin/python" "$ROOT/python/tests/test_plugin.py" \
    2>&1 | grep --line-buffered -v -E "Warning|warnings.warn|^  "
exit "${PIPESTATUS[0]}"

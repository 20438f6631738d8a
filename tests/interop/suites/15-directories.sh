#!/usr/bin/env bash
# Directory versions against real torch and transformers: the consolidated
# safetensors export of DCP versions equals what dcp_to_torch_save gives,
# that of Hugging Face sharded versions equals their shards, and
# Trainer.train(resume_from_checkpoint=...) resumes from a pulled
# checkpoint-N at step N+1 with its optimizer and scheduler state.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail
"$VENV/bin/python" "$ROOT/tests/interop/dirs/check_dirs.py" --reg "$REG_BIN" --root "$ROOT" --scratch "$SCRATCH" 2>&1 \
    | grep --line-buffered -v -E "Warning|warnings.warn"
exit "${PIPESTATUS[0]}"

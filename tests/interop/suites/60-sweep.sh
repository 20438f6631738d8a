#!/usr/bin/env bash
# The sweep (tests/sweep): ~130 checkpoints made with real torch and
# Lightning (every dtype torch.save writes, views, sparse, nested, meta and
# quantized tensors, legacy and zip formats, hand-made zips, hparams of
# many Python types), each pushed, pulled byte-identical, shown, exported
# weights-only and as safetensors and diffed. Findings documented as right
# in tests/sweep/README.md pass; any other fails.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail
"$VENV/bin/python" "$ROOT/tests/sweep/make_and_check.py" --reg "$REG_BIN" --keep "$SCRATCH/sweep" 2>&1 \
    | grep --line-buffered -v -E "Warning|warnings.warn|GPU available|TPU available|Tip:|max_epochs=|limit_val_batches|^  "
exit "${PIPESTATUS[0]}"

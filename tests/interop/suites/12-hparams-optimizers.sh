#!/usr/bin/env bash
# Hyperparameter types (OmegaConf, Namespace, numpy scalars, paths, big
# ints, nan/inf, tuples) and optimizers (SGD-nesterov, Adagrad, RMSprop,
# RAdam, LBFGS, Adamax) the committed fixtures do not have: made with real
# Lightning, checked against what torch.load gives.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail
if ! "$VENV/bin/python" -c "import omegaconf" 2>/dev/null; then
    echo "hparams: installing omegaconf into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "omegaconf==2.4.0" >"$SCRATCH/pip.log" 2>&1 ||
        { echo "FAIL pip install omegaconf (see $SCRATCH/pip.log)"; echo "0 passed, 1 failed"; exit 1; }
fi
"$VENV/bin/python" "$ROOT/tests/interop/hparams/check_hparams.py" --reg "$REG_BIN" --scratch "$SCRATCH" 2>&1 \
    | grep --line-buffered -v -E "Warning|warnings.warn|GPU available|TPU available|Tip:|max_epochs=|^  "
exit "${PIPESTATUS[0]}"

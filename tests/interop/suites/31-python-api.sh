#!/usr/bin/env bash
# The Python API, the transformers Trainer callback and the Lightning
# integration with real torch, Lightning and transformers, through the
# installed wheel: load_state_dict / load_checkpoint against torch.load,
# the per-user reg:// cache, RegTrainerCallback on a tiny BERT, sharded
# (folder) checkpoints and AsyncCheckpointIO in Lightning.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail

passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }

if wheel="$("$ROOT/python/tests/build-wheel.sh" "$SCRATCH/dist" "$VENV/bin/python" | tail -n 1)" && [[ -f "$wheel" ]]; then
    ok "the wheel builds: $(basename "$wheel")"
else
    fail "the wheel builds"
    finish
fi

# A venv of its own that sees the interop venv's packages (torch,
# Lightning, transformers) through a .pth file, so installing the wheel
# and its dependencies leaves the shared venv as run.sh made it.
venv="$SCRATCH/venv"
"$VENV/bin/python" -m venv "$venv" || { fail "make the test venv"; finish; }
shared_site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
own_site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$shared_site" >"$own_site/reg-interop-venv.pth"
if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$wheel"; then
    ok "the wheel installs beside torch, Lightning and transformers"
else
    fail "the wheel installs beside torch, Lightning and transformers"
    finish
fi

# Each test file in its own process, from a folder outside the checkout so
# only the installed package imports; the cache in the suite's scratch.
for test in test_api test_lightning test_trainer test_dcp; do
    log="$SCRATCH/$test.log"
    (cd "$SCRATCH" && env -u REG_BIN -u REG_HOME -u REG_LIGHTNING_CACHE XDG_CACHE_HOME="$SCRATCH/xdg-cache" ROOT="$ROOT" \
        PYTHONWARNINGS=ignore "$venv/bin/python" "$ROOT/python/tests/$test.py") 2>&1 |
        grep --line-buffered -v -E "Warning|warnings.warn|^  warnings|💡 Tip|GPU available|TPU available|HPU available" | tee "$log"
    last="$(tail -n 1 "$log")"
    if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
    else
        fail "$test.py died before its summary"
    fi
done
finish

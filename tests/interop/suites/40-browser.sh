#!/usr/bin/env bash
# `reg serve` in a real browser: Debian's chromium (installed with apt when
# missing; CI runs as root) driven by Playwright for Python (from PyPI into
# the venv; it never downloads a browser of its own). Pushes the Lightning
# fixture series, starts `reg serve`, loads every page, finds the plots,
# clicks from a model page to a diff, and saves screenshots in SCRATCH
# (and in REG_SCREENSHOTS=DIR when set, e.g. docs/img).
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail
fail() { echo "FAIL browser setup: $1"; echo "0 passed, 1 failed"; exit 1; }

if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        fail "/usr/bin/chromium is missing and installing it needs root (apt-get install chromium)"
    fi
    echo "browser: installing Debian's chromium"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$SCRATCH/apt.log" 2>&1 ||
        fail "apt-get install chromium failed (see $SCRATCH/apt.log)"
fi
# Playwright's Python package carries its driver; the browser is Debian's.
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    echo "browser: installing Playwright for Python into $VENV"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "playwright==1.65.2" >"$SCRATCH/pip.log" 2>&1 || fail "pip install playwright failed (see $SCRATCH/pip.log)"
fi
exec "$VENV/bin/python" "$ROOT/tests/interop/suites/40-browser.py" --reg "$REG_BIN" \
    --fixtures "$ROOT/tests/fixtures" --scratch "$SCRATCH" ${REG_SCREENSHOTS:+--screenshots "$REG_SCREENSHOTS"}

#!/usr/bin/env bash
# The Python wheel (python/): built from this checkout, installed into a
# fresh venv whose PATH has no cargo or rustc, and used there without
# torch: `reg --version`, `python -m reg`, the Registry API against
# tests/fixtures/lightning/mlp, errors as RegError.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail

passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit $?; }

# ---------------------------------------------------------------- build
start=$SECONDS
if wheel="$("$ROOT/python/tests/build-wheel.sh" "$SCRATCH/dist" "$VENV/bin/python" | tail -n 1)" && [[ -f "$wheel" ]]; then
    ok "the wheel builds from the checkout: $(basename "$wheel") ($(du -h "$wheel" | cut -f1), $((SECONDS - start)) s)"
else
    fail "the wheel builds from the checkout"
    finish
fi
case "$(basename "$wheel")" in
    *-py3-none-any.whl) fail "the wheel is a platform wheel (it is tagged any)" ;;
    *) ok "the wheel is a platform wheel" ;;
esac

# ---------------------------------------------------------------- install without Rust
# A PATH with the system's tools only: no ~/.cargo/bin, no rustup.
clean_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
python3 -m venv "$SCRATCH/fresh" || { fail "python3 -m venv"; finish; }
fresh="$SCRATCH/fresh"
no_rust=(env -u CARGO_HOME -u RUSTUP_HOME -u CARGO_TARGET_DIR -u REG_BIN -u REG_HOME
    "PATH=$fresh/bin:$clean_path" "XDG_CACHE_HOME=$SCRATCH/xdg-cache" "ROOT=$ROOT")
if "${no_rust[@]}" bash -c '! command -v cargo && ! command -v rustc' >/dev/null; then
    ok "the install PATH has no cargo or rustc"
else
    fail "the install PATH has no cargo or rustc"
fi
# --only-binary: the wheel itself, never a source build.
if "${no_rust[@]}" "$fresh/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$wheel"; then
    ok "pip installs the wheel into a fresh venv without Rust"
else
    fail "pip installs the wheel into a fresh venv without Rust"
    finish
fi

# ---------------------------------------------------------------- the binary
want="$("$REG_BIN" --version)"
got="$("${no_rust[@]}" bash -c 'command -v reg && reg --version')"
if [[ "$got" == "$fresh/bin/reg"$'\n'"$want" ]]; then
    ok "reg is on the venv's PATH: $want"
else
    fail "reg is on the venv's PATH (got: $got; want $fresh/bin/reg, $want)"
fi
if [[ "$("${no_rust[@]}" "$fresh/bin/python" -m reg --version)" == "$want" ]]; then
    ok "python -m reg --version"
else
    fail "python -m reg --version"
fi

# ---------------------------------------------------------------- man pages, completions
# pip puts a wheel's data files under the environment's prefix.
for f in share/man/man1/reg.1 share/man/man1/reg-push.1 share/bash-completion/completions/reg \
    share/zsh/site-functions/_reg share/fish/vendor_completions.d/reg.fish; do
    if [[ -s "$fresh/$f" ]]; then ok "the wheel installs $f"; else fail "the wheel installs $f"; fi
done
if MANPATH="$fresh/share/man" man -w reg >/dev/null 2>&1 || ! command -v man >/dev/null; then
    ok "man finds reg's page under the venv (or man is not installed)"
else
    fail "man finds reg's page under the venv"
fi
if bash -c "source '$fresh/share/bash-completion/completions/reg' && complete -p reg" >/dev/null 2>&1; then
    ok "the bash completion script loads and registers reg"
else
    fail "the bash completion script loads and registers reg"
fi

# ---------------------------------------------------------------- the API
# Run from a folder outside the checkout, so only the installed package imports.
out="$SCRATCH/test_wheel.log"
(cd "$SCRATCH" && "${no_rust[@]}" "$fresh/bin/python" "$ROOT/python/tests/test_wheel.py") 2>&1 | tee "$out"
last="$(tail -n 1 "$out")"
if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
else
    fail "test_wheel.py died before its summary"
fi
finish

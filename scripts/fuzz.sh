#!/usr/bin/env bash
# Fuzz the hostile-input readers with cargo fuzz (libFuzzer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Runs each target (default: all of them, one after the other) for
# SECONDS_PER_TARGET seconds (default 600), then prints per target the time
# run, executions, exec/s, corpus growth and findings (crash, timeout, OOM
# files written to fuzz/artifacts/<target>/ during this run).
#
# When a target finds something libFuzzer stops; the script records the
# finding and restarts it for the time left (at most MAX_FINDINGS times),
# so every target gets its full time.
#
# Environment:
#   FUZZ_JOBS=N        targets run at once (default 1; the machine has 2 cores)
#   FUZZ_SANITIZER=s   address (default) or none; address falls back to none
#                      when it cannot be built
#   FUZZ_NICE=n        nice level of the fuzzers (default 10)
#   FUZZ_TIMEOUT=s     per-input timeout in seconds (default 10)
#   FUZZ_RSS_MB=n      memory limit per fuzzer process (default 2048)
#   MAX_FINDINGS=n     findings per target before giving up on it (default 5)
#
# Stable Rust: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags cargo
# fuzz passes (-Zsanitizer, coverage instrumentation); nightly is not needed.
# --build-std is not used (it needs the nightly-only rust-src component), so
# the standard library itself is not instrumented.
#
# Inputs: fuzz/seeds/<target>/ (tracked, read-only seeds) and
# fuzz/corpus/<target>/ (grown by libFuzzer, not tracked). Logs go to
# fuzz/logs/<target>.log.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

secs="${1:-600}"
shift || true
all_targets=(pickle torchzip legacy safetensors inspect codecs_decode remote_entries manifest)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

jobs="${FUZZ_JOBS:-1}"
san="${FUZZ_SANITIZER:-address}"
nice_level="${FUZZ_NICE:-10}"
timeout_s="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-2048}"
max_findings="${MAX_FINDINGS:-5}"
export RUSTC_BOOTSTRAP=1

max_len_of() {
    case "$1" in
        pickle) echo 32768 ;;
        torchzip | inspect | remote_entries | manifest) echo 262144 ;;
        *) echo 65536 ;;
    esac
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building fuzz targets (sanitizer: $san)"
if ! nice -n "$nice_level" cargo fuzz build --sanitizer "$san"; then
    if [ "$san" != none ]; then
        echo "!! building with --sanitizer $san failed; falling back to --sanitizer none" >&2
        san=none
        nice -n "$nice_level" cargo fuzz build --sanitizer none
    else
        exit 1
    fi
fi

mkdir -p fuzz/logs fuzz/artifacts
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

count_files() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }

# Run one target for $secs seconds; writes a result line to $results/<t>.
run_target() {
    local t="$1" log="fuzz/logs/$1.log"
    local corpus="fuzz/corpus/$t" seeds="fuzz/seeds/$t" art="fuzz/artifacts/$t"
    mkdir -p "$corpus" "$seeds" "$art"
    : >"$log"
    local stamp
    stamp="$(mktemp)"
    local corpus_before start now left execs=0 findings=0 rc
    corpus_before="$(count_files "$corpus")"
    start="$(date +%s)"
    while :; do
        now="$(date +%s)"
        left=$((secs - (now - start)))
        [ "$left" -gt 0 ] || break
        local from
        from="$(wc -l <"$log")"
        set +e
        nice -n "$nice_level" cargo fuzz run --sanitizer "$san" "$t" "$corpus" "$seeds" -- \
            -max_total_time="$left" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
            -max_len="$(max_len_of "$t")" -print_final_stats=1 >>"$log" 2>&1
        rc=$?
        set -e
        # Executions of this run: its final stats, else its last status line.
        local n
        n="$(tail -n +"$((from + 1))" "$log" | grep -a '^stat::number_of_executed_units:' | tail -1 | awk '{print $2}' || true)"
        if [ -z "$n" ]; then
            n="$(tail -n +"$((from + 1))" "$log" | grep -aoE '^#[0-9]+' | tail -1 | tr -d '#' || true)"
        fi
        execs=$((execs + ${n:-0}))
        echo "---- run ended with status $rc ----" >>"$log"
        findings="$(find "$art" -maxdepth 1 -type f -newer "$stamp" | wc -l)"
        if [ "$rc" -eq 0 ]; then break; fi
        if [ "$findings" -eq 0 ]; then
            echo "!! $t: cargo fuzz exited with status $rc without a finding; see $log" >&2
            break
        fi
        if [ "$findings" -ge "$max_findings" ]; then break; fi
    done
    now="$(date +%s)"
    local ran=$((now - start))
    local list
    list="$(find "$art" -maxdepth 1 -type f -newer "$stamp" -printf '%f ' | sed 's/ $//')"
    rm -f "$stamp"
    local grown=$(($(count_files "$corpus") - corpus_before))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$ran" "$execs" "$((execs / (ran > 0 ? ran : 1)))" \
        "$grown" "$findings" "${list:--}" >"$results/$t"
    echo "== $t: ${ran}s, $execs executions, $findings finding(s) ${list}"
}

running=0
for t in "${targets[@]}"; do
    if [ ! -f "fuzz/fuzz_targets/$t.rs" ]; then
        echo "unknown target $t (have: ${all_targets[*]})" >&2
        exit 2
    fi
    echo "== fuzzing $t for ${secs}s (log: fuzz/logs/$t.log)"
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

echo
echo "sanitizer: $san, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
printf '%-14s %8s %12s %8s %10s %8s  %s\n' target seconds executions exec/s new_inputs findings files
total=0
for t in "${targets[@]}"; do
    [ -f "$results/$t" ] || continue
    IFS=$'\t' read -r name ran execs rate grown findings list <"$results/$t"
    printf '%-14s %8s %12s %8s %10s %8s  %s\n' "$name" "$ran" "$execs" "$rate" "$grown" "$findings" "$list"
    total=$((total + findings))
done
if [ "$total" -gt 0 ]; then
    echo "findings are in fuzz/artifacts/<target>/; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>"
    exit 1
fi

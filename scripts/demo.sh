#!/usr/bin/env bash
# The main job, end to end, on real checkpoints from tests/fixtures:
# push a Lightning run and its fine-tune (stored against its base with
# --parent), list them, show one, pull two back (the newest, and the
# oldest, which is stored as deltas against newer versions) and check they
# are byte-identical, diff two versions; the same for a sharded checkpoint
# directory; verify, and print the stats.
# Uses the registry that ./registry.toml names (.reg/ in this checkout),
# unless REG_HOME or --registry say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
REG=${REG:-target/release/reg}
F=tests/fixtures/lightning

run() { echo "\$ reg $*"; "$REG" "$@"; echo; }

for f in "$F"/mlp/epoch=0{0,1,2,3}.ckpt "$F"/mlp/last.ckpt; do
  run push "$f" --name mlp
done
for f in "$F"/mlp-finetune/epoch=0{0,1}.ckpt; do
  run push "$f" --name mlp-finetune --parent mlp@epoch=3 -m "fine-tune from mlp epoch 3"
done
run ls
run log mlp
run show mlp@epoch=2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for e in 3 0; do
  out=$tmp/epoch$e.ckpt
  run pull mlp@epoch=$e -o "$out"
  cmp "$out" "$F/mlp/epoch=0$e.ckpt" && echo "pulled file is byte-identical to $F/mlp/epoch=0$e.ckpt" && echo
done
if "$REG" diff --help >/dev/null 2>&1; then
  run diff mlp@epoch=3 mlp-finetune@epoch=1
fi
# A sharded checkpoint directory (FSDP2 over 2 ranks, torch.distributed
# .checkpoint) is one version; its chunks dedupe across steps.
D=tests/fixtures/dirs/dcp/fsdp2-2rank
for s in 1 2; do
  run push "$D/step=$s" --name fsdp
done
run show fsdp@v2
run pull fsdp@v1 -o "$tmp/step=1"
diff -r "$tmp/step=1" "$D/step=1" && echo "pulled directory is byte-identical to $D/step=1" && echo
run diff fsdp@v1 fsdp@v2
run pull fsdp@v2 --format safetensors -o "$tmp/fsdp.safetensors"
run verify --full
run stats

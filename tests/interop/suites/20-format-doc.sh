#!/usr/bin/env bash
# docs/format.md against reg: tests/interop/decode_blob.py, a reader written
# from that page alone, must decode every blob of registries reg wrote from
# real checkpoints (Lightning fixtures, a fine-tune pushed --parent, and
# torch-made files with pruned weights, bf16/f16/f64 tensors and an 8 MiB+
# embedding) to bytes whose blake3 is the blob id, and rebuild every version
# from its manifest into the file reg pulls. Any byte where the page and the
# code disagree fails a frame checksum, a blake3 or a length here.
# Environment from run.sh: VENV, REG_BIN, ROOT, SCRATCH.
set -uo pipefail

py="$VENV/bin/python"
dec="$ROOT/tests/interop/decode_blob.py"
fix="$ROOT/tests/fixtures"
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: ok when the command succeeds, else its output
    local name="$1" out
    shift
    if out="$("$@" 2>&1)"; then ok "$name"; else fail "$name" "$(tail -n 3 <<<"$out" | tr '\n' ' ')"; fi
}
trap 'echo "$passed passed, $failed failed"' EXIT

# ------------------------------------------------------------ the decoder's two packages
if ! "$py" -c "import zstandard, blake3" 2>/dev/null; then
    PIP_CACHE_DIR="$(dirname "$VENV")/pip" "$py" -m pip install --quiet --disable-pip-version-check \
        zstandard blake3 || { fail "setup" "cannot install zstandard and blake3 into $VENV"; exit 1; }
fi

# ------------------------------------------------------------ the checksum's test vectors
# The table in docs/format.md, computed by the decoder's checksum (which
# follows the page's pseudo-code); codecs::checksum tests the same table.
check "checksum test vectors of docs/format.md" "$py" - "$ROOT/docs/format.md" "$dec" <<'EOF'
import importlib.util, re, sys
spec = importlib.util.spec_from_file_location("decode_blob", sys.argv[2])
d = importlib.util.module_from_spec(spec); spec.loader.exec_module(d)
text = open(sys.argv[1]).read().split("## The checksum", 1)[1].split("\n## ", 1)[0]
rows = re.findall(r"^\| (.+?) \| `(0x[0-9a-f]{16})` \|$", text, re.M)
assert len(rows) >= 4, f"test vector table not found ({len(rows)} rows)"
for what, want in rows:
    if what == "empty":
        data = b""
    elif m := re.fullmatch(r"`.*` \(([0-9a-f ]+)\)", what):
        data = bytes.fromhex(m.group(1))
    elif m := re.fullmatch(r"the (\d+) bytes 00 01 02 \.\.\. [0-9a-f]{2}", what):
        data = bytes(range(int(m.group(1))))
    else:
        raise SystemExit(f"cannot read test vector {what!r}")
    got = d.checksum(data)
    assert got == int(want, 16), f"{what}: {got:#018x}, the page says {want}"
print(len(rows), "vectors")
EOF

# ------------------------------------------------------------ torch-made checkpoints
# A model with magnitude-pruned weights (half zeros: sparse blocks), bf16,
# f16 and f64 tensors (element widths 2 and 8), a constant norm weight (zstd
# alone beats planes) and an embedding over 8 MiB (two frames, many blocks);
# then a fine-tune that changes a third of the entries and keeps the
# pruned ones zero (sparse XOR blocks).
made="$SCRATCH/made"
mkdir -p "$made"
check "torch makes the pruned series" "$py" - "$made" <<'EOF'
import sys, torch
out = sys.argv[1]
g = torch.Generator().manual_seed(20)
pruned = torch.randn(256, 256, generator=g) * 0.05
pruned[pruned.abs() < 0.034] = 0
sd = {
    "embed.weight": torch.randn(2112, 1024, generator=g) * 0.02,
    "pruned.weight": pruned,
    "norm.weight": torch.ones(4096),
    "bf16.weight": (torch.randn(128, 256, generator=g) * 0.05).to(torch.bfloat16),
    "f16.weight": (torch.randn(128, 256, generator=g) * 0.05).to(torch.float16),
    "f64.running_mean": torch.randn(2048, dtype=torch.float64, generator=g),
    "steps": torch.tensor(100),
}
torch.save({"state_dict": sd, "epoch": 0}, f"{out}/pruned-0.pt")
tuned = {}
for k, t in sd.items():
    t = t.clone()
    if t.is_floating_point():
        change = torch.rand(t.shape, generator=g) < 0.33
        t[change] += (torch.randn(t.shape, generator=g)[change] * 1e-3).to(t.dtype)
        if k == "pruned.weight":
            t[sd[k] == 0] = 0
    tuned[k] = t
torch.save({"state_dict": tuned, "epoch": 1}, f"{out}/pruned-1.pt")
EOF

# ------------------------------------------------------------ registries
# Each is run from a folder whose registry.toml gives its settings.
reg() { # reg SETTINGS_DIR ARGS...
    local dir="$1"
    shift
    (cd "$dir" && "$REG_BIN" --registry "$dir/registry" --quiet "$@")
}
settings() { # settings NAME TOML: a folder with that registry.toml
    mkdir -p "$SCRATCH/$1"
    printf '[registry]\n%s\n' "$2" >"$SCRATCH/$1/registry.toml"
    echo "$SCRATCH/$1"
}
auto="$(settings auto 'deltas = "inline"')"
zstd="$(settings zstd 'codecs = "zstd"')"
retained="$(settings retained $'deltas = "inline"\nkeep_optimizer_last = 2')"

push_all() { # push_all DIR: the fixtures every registry gets
    local dir="$1" f
    for f in "$fix"/lightning/mlp/epoch=0{0,1,2,3}.ckpt "$fix/lightning/mlp/last.ckpt"; do
        reg "$dir" push "$f" -n mlp || return 1
    done
    for f in "$fix"/lightning/mlp-finetune/epoch=0{0,1}.ckpt; do
        reg "$dir" push "$f" -n mlp-finetune --parent mlp@v4 || return 1
    done
    reg "$dir" push "$made/pruned-0.pt" -n pruned && reg "$dir" push "$made/pruned-1.pt" -n pruned &&
        reg "$dir" push "$fix/safetensors/mlp.safetensors" -n st &&
        reg "$dir" push "$fix/torch/legacy.pt" -n legacy &&
        reg "$dir" deltas mlp && reg "$dir" deltas mlp-finetune && reg "$dir" deltas pruned
}
for dir in "$auto" "$zstd" "$retained"; do
    check "push the fixtures ($(basename "$dir"))" push_all "$dir"
done

# ------------------------------------------------------------ every blob decodes
verify() { # verify DIR: decode_blob.py verify, its report kept beside
    "$py" "$dec" verify "$1/registry" >"$1/decoded.json"
}
for dir in "$auto" "$zstd" "$retained"; do
    check "every blob decodes to its id ($(basename "$dir"))" verify "$dir"
done

# What the decoder met must cover every part of the page, and agree with
# what reg says of the same blobs: `reg stats` by codec name, `reg show`
# per version (its blobs, delta blobs and longest chain, from headers).
check "the blobs cover every codec, frame kind, section codec and block mode" \
    "$py" - "$auto/decoded.json" "$zstd/decoded.json" <<'EOF'
import json, sys
auto, zstd = (json.load(open(p)) for p in sys.argv[1:3])
need = {
    "codecs": ["raw", "zstd", "planes", "delta"],
    "frames": ["none", "planes", "xor-planes"],
    "sections": ["stored", "zstd", "huffman"],
    "blocks": ["dense", "sparse"],
    "xor_masks": ["all", "some"],
    "widths": ["2", "4", "8"],
    "shapes": ["multi-frame blobs", "multi-block frames"],
}
missing = [f"{k}.{v}" for k, vs in need.items() for v in vs if not auto[k].get(v)]
assert not missing, f"nothing decoded exercises {missing}"
assert auto["longest_chain"] >= 2, f"longest chain decoded {auto['longest_chain']}"
assert set(zstd["codecs"]) <= {"raw", "zstd"}, f"codecs = zstd wrote {zstd['codecs']}"
print({k: auto[k] for k in need})
EOF

check "reg stats agrees on every codec's blobs and bytes" "$py" - "$auto" "$zstd" "$retained" "$REG_BIN" <<'EOF'
import json, subprocess, sys
*dirs, reg = sys.argv[1:]
for d in dirs:
    seen = json.load(open(f"{d}/decoded.json"))
    stats = json.loads(subprocess.run([reg, "--registry", f"{d}/registry", "stats", "--json"], cwd=d,
                                      check=True, capture_output=True).stdout)
    mine = {c: [n, seen["stored_bytes"][c]] for c, n in seen["codecs"].items()}
    assert stats["codecs"] == mine, f"{d}: reg stats {stats['codecs']}, decoded {mine}"
    assert stats["blobs"] == seen["blobs"], f"{d}: {stats['blobs']} blobs, {seen['blobs']} decoded"
EOF

check "reg show agrees on each version's blobs, deltas and chains" "$py" - "$auto" "$REG_BIN" "$dec" <<'EOF'
import importlib.util, json, os, subprocess, sys
d, reg, dec = sys.argv[1:]
spec = importlib.util.spec_from_file_location("decode_blob", dec)
db = importlib.util.module_from_spec(spec); spec.loader.exec_module(db)
r = db.Registry(f"{d}/registry")
def run(*args):
    return json.loads(subprocess.run([reg, "--registry", f"{d}/registry", *args, "--json"], cwd=d,
                                     check=True, capture_output=True).stdout)
def chain(blob):
    n, h = 0, r.header(blob)
    while h.parent:
        n, h = n + 1, r.header(h.parent)
    return n
checked = 0
for entry in run("ls"):
    for v in run("log", entry["name"]):
        ref = f"{entry['name']}@v{v['version']}"
        shown = run("show", ref)
        m = json.loads(r.read(v["id"]))
        blobs = {m["skeleton"]} | {p["blob"] for p in m["pieces"] if p["kind"] == "payload"}
        mine = {
            "blobs": len(blobs),
            "stored_bytes": sum(os.path.getsize(r.path(b)) for b in blobs),
            "deltas": sum(r.header(b).codec == 3 for b in blobs),
            "longest_chain": max(chain(b) for b in blobs),
        }
        assert shown["stored"] == mine, f"{ref}: reg show {shown['stored']}, from the headers {mine}"
        assert [t["blob"] for t in shown["tensors"]] == [t["blob"] for t in m["tensors"]], ref
        checked += 1
print(checked, "versions")
EOF

# ------------------------------------------------------------ every version rebuilds
# From its manifest alone: the pushed file, or for a version whose optimizer
# state retention dropped, the weights-only file `reg pull` writes, with
# the original's size and blake3 in `optimizer_dropped`.
check "every version rebuilds from its manifest into what reg pulls" \
    "$py" - "$auto" "$zstd" "$retained" "$REG_BIN" "$dec" <<'EOF'
import blake3, importlib.util, io, json, subprocess, sys
*dirs, reg, dec = sys.argv[1:]
spec = importlib.util.spec_from_file_location("decode_blob", dec)
db = importlib.util.module_from_spec(spec); spec.loader.exec_module(db)
rebuilt = dropped = 0
for d in dirs:
    r = db.Registry(f"{d}/registry")
    def run(*args):
        return subprocess.run([reg, "--registry", f"{d}/registry", *args], cwd=d, check=True,
                              capture_output=True).stdout
    for entry in json.loads(run("ls", "--json")):
        for v in json.loads(run("log", entry["name"], "--json")):
            ref = f"{entry['name']}@v{v['version']}"
            out = io.BytesIO()
            m = r.rebuild(v["id"], out)
            pulled = f"{d}/pulled.bin"
            run("pull", ref, "-o", pulled, "--force")
            assert out.getvalue() == open(pulled, "rb").read(), f"{d} {ref}: rebuilt file differs from the pull"
            assert blake3.blake3(out.getvalue()).hexdigest() == m["blake3"], f"{ref}: blake3"
            if m["optimizer_dropped"]:
                orig = m["optimizer_dropped"]
                assert orig["size"] != m["size"] and set(orig) == {"size", "blake3", "when"}, orig
                dropped += 1
            rebuilt += 1
assert dropped > 0, "no version had its optimizer state dropped"
print(rebuilt, "versions,", dropped, "weights-only")
EOF

check "pushed files come back byte for byte" "$py" - "$auto" "$REG_BIN" "$dec" "$fix" "$made" <<'EOF'
import importlib.util, io, json, os, subprocess, sys
d, reg, dec, fix, made = sys.argv[1:]
spec = importlib.util.spec_from_file_location("decode_blob", dec)
db = importlib.util.module_from_spec(spec); spec.loader.exec_module(db)
r = db.Registry(f"{d}/registry")
sources = {"mlp": f"{fix}/lightning/mlp", "mlp-finetune": f"{fix}/lightning/mlp-finetune",
           "pruned": made, "st": f"{fix}/safetensors", "legacy": f"{fix}/torch"}
n = 0
for name, folder in sources.items():
    log = json.loads(subprocess.run([reg, "--registry", f"{d}/registry", "log", name, "--json"], cwd=d,
                                    check=True, capture_output=True).stdout)
    for v in log:
        out = io.BytesIO()
        r.rebuild(v["id"], out)
        want = open(os.path.join(folder, v["source"]), "rb").read()
        assert out.getvalue() == want, f"{name}@v{v['version']}: not the pushed {v['source']}"
        n += 1
print(n, "files")
EOF

# ------------------------------------------------------------ damage is caught
# The decoder is no rubber stamp: one flipped byte in a delta blob, or a
# delta whose parent is another blob of the same length, fails it.
check "a damaged or re-parented delta blob fails to decode" "$py" - "$auto" "$dec" <<'EOF'
import importlib.util, json, os, shutil, sys
d, dec = sys.argv[1:]
spec = importlib.util.spec_from_file_location("decode_blob", dec)
db = importlib.util.module_from_spec(spec); spec.loader.exec_module(db)
copy = f"{d}/damaged"
shutil.rmtree(copy, ignore_errors=True)
shutil.copytree(f"{d}/registry/blobs", f"{copy}/blobs")
r = db.Registry(copy)
deltas = [b for b in r.all_blobs() if r.header(b).codec == 3]
assert deltas, "no delta blob"
victim = max(deltas, key=lambda b: os.path.getsize(r.path(b)))
raw = bytearray(open(r.path(victim), "rb").read())
# After the blob header (48), the frame length (4) and a delta frame's
# header (64): the first block's mode byte, then its first section.
first_len = int.from_bytes(raw[118:122], "little")
for at in (60, 68, 122 + first_len // 2):  # frame raw length, frame checksum, a section's data
    bad = bytearray(raw)
    bad[at] ^= 0x10
    open(r.path(victim), "wb").write(bad)
    try:
        r.read(victim)
    except db.FormatError:
        continue
    raise SystemExit(f"byte {at} of {victim} flipped, and it still decoded")
open(r.path(victim), "wb").write(raw)
# Another blob of the right length named as the parent, in the blob header
# and in every delta frame's header: the parent checksums must refuse it.
def candidates(b):
    h = r.header(b)
    return [o for o in r.all_blobs() if o not in (b, h.parent) and r.header(o).raw_len == h.raw_len]
victim = next((b for b in deltas if candidates(b)), None)
assert victim, "no delta blob with another blob of its length"
wrong = bytes.fromhex(candidates(victim)[0])
raw = bytearray(open(r.path(victim), "rb").read())
raw[16:48] = wrong
at = 48
while at < len(raw):
    n = int.from_bytes(raw[at : at + 4], "little")
    if raw[at + 5] == 2:  # frame kind: xor-planes
        raw[at + 4 + 32 : at + 4 + 64] = wrong
    at += 4 + n
open(r.path(victim), "wb").write(raw)
try:
    r.read(victim)
except db.FormatError as e:
    assert "parent checksum" in str(e), e
    print("re-parented:", e)
else:
    raise SystemExit("a delta against the wrong parent decoded")
EOF
[[ $failed -eq 0 ]]

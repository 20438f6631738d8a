#!/usr/bin/env python3
"""What XOR deltas against the parent epoch would save on the real series.

reg_store::codecs has XOR-against-parent, but push does not use it yet, so
reg cannot measure it on a registry. This is a model of the codec in
Python (numpy + the `zstandard` package), not reg itself: for every float32
storage a version adds (storages already seen, such as frozen weights, are
deduplicated), in 1 MiB blocks of raw bytes split into byte planes, it sums
per plane the smallest of stored / zstd-1 / zstd-3, for

  planes   the byte planes of the tensor (what codecs = "auto" does today)
  xor      per plane the smaller of the plain plane and the plane of the XOR
           with the same tensor of the previous epoch (the parent)
  choose   per tensor: xor when it saves at least 3% over planes, as
           reg_store::codecs::choose decides

and prints the totals by kind of tensor (trainable weights, exp_avg,
exp_avg_sq). The "planes" total is checked against reg's own number on the
same files (the bench prints both) to show the model is close.

It also prints the same for the registry after
`reg prune --keep-optimizer-last 2` (weights of every version, optimizer
state of the newest two, whose oldest has no parent left to XOR against).

Usage: xor_estimate.py CKPT...   (in training order)
"""

import hashlib
import sys

import numpy as np
import torch
import zstandard

BLOCK = 1 << 20
Z1 = zstandard.ZstdCompressor(level=1, write_content_size=False, write_checksum=False)
Z3 = zstandard.ZstdCompressor(level=3, write_content_size=False, write_checksum=False)


def section(plane):
    n = len(plane)
    if n < 64:
        return n
    best = n
    for z in (Z1, Z3):
        c = len(z.compress(plane))
        if c + n // 64 < n:
            best = min(best, c)
    return best


def planes_of(u8, w=4):
    # u8: uint8 array of whole elements; plane p = byte p of every element
    return [np.ascontiguousarray(u8.reshape(-1, w)[:, p]).tobytes() for p in range(w)]


def sizes(raw, parent):
    """Per-plane sizes (plain, xor) summed over 1 MiB blocks."""
    plain = np.zeros(4, dtype=np.int64)
    xor = np.zeros(4, dtype=np.int64)
    for s in range(0, len(raw), BLOCK):
        b = raw[s:s + BLOCK]
        for p, pl in enumerate(planes_of(b)):
            plain[p] += section(pl)
        if parent is not None:
            x = np.bitwise_xor(b, parent[s:s + BLOCK])
            for p, pl in enumerate(planes_of(x)):
                xor[p] += section(pl)
    return plain, xor


def tensors(path):
    ck = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    out = {}
    for k, t in ck["state_dict"].items():
        if t.dtype == torch.float32:
            out[("weight", k)] = t
    for oi, opt in enumerate(ck.get("optimizer_states", [])):
        for pi, st in opt["state"].items():
            for k, t in st.items():
                if isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.numel() > 1:
                    out[(k, f"opt{oi}.{pi}")] = t
    return {k: t.contiguous().reshape(-1).view(torch.uint8).numpy() for k, t in out.items()}


def main():
    files = sys.argv[1:]
    seen = set()
    prev = {}
    kinds = ["weight", "exp_avg", "exp_avg_sq"]
    tot = {k: {"raw": 0, "planes": 0, "xor": 0, "choose": 0} for k in kinds}
    per_version = []
    keep = 2  # --keep-optimizer-last for the pruned estimate
    pruned = {"planes": 0, "choose": 0}
    for i, f in enumerate(files):
        cur = tensors(f)
        v = {"raw": 0, "planes": 0, "xor": 0, "choose": 0}
        for key, raw in cur.items():
            h = hashlib.blake2b(raw.tobytes(), digest_size=16).digest()
            if h in seen:
                continue
            seen.add(h)
            parent = prev.get(key)
            if parent is not None and len(parent) != len(raw):
                parent = None
            plain, xor = sizes(raw, parent)
            pl = int(plain.sum())
            xo = int(np.minimum(plain, xor).sum()) if parent is not None else pl
            ch = xo if xo * 100 <= pl * 97 else pl
            kind = key[0] if key[0] in tot else "weight"
            # After prune --keep-optimizer-last 2: weights of every version,
            # optimizer state of the newest 2 only, its parent (kept only
            # when also among them) the only delta base it may use.
            if kind == "weight" or i >= len(files) - keep:
                pruned["planes"] += pl
                pruned["choose"] += ch if (kind == "weight" or i - 1 >= len(files) - keep) else pl
            for d in (tot[kind], v):
                d["raw"] += len(raw)
                d["planes"] += pl
                d["xor"] += xo
                d["choose"] += ch
        per_version.append(v)
        prev = cur
        print(f"  v{i + 1}: new float32 {v['raw'] / 1e6:7.1f} MB -> planes {v['planes'] / 1e6:6.1f} MB, "
              f"xor {v['xor'] / 1e6:6.1f} MB, choose {v['choose'] / 1e6:6.1f} MB", flush=True)
    print("  by kind (all versions):")
    for k in kinds:
        d = tot[k]
        if d["raw"]:
            print(f"    {k:10} raw {d['raw'] / 1e6:7.1f} MB  planes {d['raw'] / d['planes']:.3f}x  "
                  f"xor {d['raw'] / d['xor']:.3f}x  choose {d['raw'] / d['choose']:.3f}x")
    s = {x: sum(v[x] for v in per_version) for x in ("raw", "planes", "xor", "choose")}
    print(f"  total new float32: {s['raw']:,} raw, planes {s['planes']:,}, xor {s['xor']:,}, choose {s['choose']:,}")
    print(f"  => XOR against the parent would change stored float bytes by "
          f"{(s['choose'] - s['planes']) / s['planes'] * 100:+.1f}% (model of the codec, not reg)")
    print(f"  after prune --keep-optimizer-last {keep}: planes {pruned['planes']:,}, with XOR {pruned['choose']:,} "
          f"({(pruned['choose'] - pruned['planes']) / pruned['planes'] * 100:+.1f}%)")
    print(f"ESTIMATE\t{s['planes']}\t{s['choose']}")
    print(f"ESTIMATE_PRUNED\t{pruned['planes']}\t{pruned['choose']}")


if __name__ == "__main__":
    main()

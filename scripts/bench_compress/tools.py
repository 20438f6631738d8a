#!/usr/bin/env python3
"""Helpers for scripts/bench_compress.sh.

  tools.py cpu OUT CMD ARGS...      run CMD, append "user sys wall" (seconds,
                                    CPU of the child and its threads) to OUT
  tools.py float32-bytes FILE       bytes of distinct float32 storages in a checkpoint
  tools.py check-weights-only PULLED ORIGINAL
                                    PULLED loads with torch.load(weights_only=True),
                                    has no optimizer/scheduler state, and its
                                    state_dict equals ORIGINAL's bit for bit
  tools.py table RESULTS.tsv        the Markdown table of stored bytes
  tools.py speed RESULTS.tsv        the throughput lines
"""

import os
import subprocess
import sys
import time


def cpu(out, cmd):
    t = time.monotonic()
    p = subprocess.Popen(cmd)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"tools.py cpu: {' '.join(cmd)} exited with {code}")
    with open(out, "a") as f:
        f.write(f"{ru.ru_utime:.3f} {ru.ru_stime:.3f} {wall:.3f}\n")


def load_full(path):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        # Our own files: Lightning may pickle classes weights_only refuses.
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)


def float32_bytes(path):
    import torch

    seen = {}

    def walk(o):
        if isinstance(o, torch.Tensor):
            s = o.untyped_storage()
            if o.dtype == torch.float32:
                seen[(s.data_ptr(), s.nbytes())] = s.nbytes()
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)

    walk(load_full(path))
    print(sum(seen.values()))


def check_weights_only(pulled, original):
    import torch

    w = torch.load(pulled, map_location="cpu", weights_only=True)
    o = load_full(original)
    bad = [k for k in ("optimizer_states", "lr_schedulers") if w.get(k)]
    if bad:
        sys.exit(f"{pulled}: still has {bad}")
    sd, osd = w["state_dict"], o["state_dict"]
    if sorted(sd) != sorted(osd):
        sys.exit(f"{pulled}: state_dict keys differ from {original}")
    def raw(t):
        return t.contiguous().reshape(-1).view(torch.uint8)

    for k in osd:
        a, b = sd[k], osd[k]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(raw(a), raw(b)):
            sys.exit(f"{pulled}: tensor {k} differs from {original}")
    print(f"  {os.path.basename(pulled)}: torch.load(weights_only=True) ok, {len(sd)} tensors bit-identical "
          f"to the original's, epoch {w.get('epoch')}, keys {sorted(w)}")


def read_results(path):
    rows, vals = [], {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "row":
                rows.append(parts[1:])
            elif parts[0] == "val":
                vals[parts[1]] = parts[2]
    return rows, vals


def mb(n):
    return f"{n / 1e6:,.1f}"


def table(path):
    rows, vals = read_results(path)
    plain = float(vals["plain"])
    borg = float(vals["borg"]) if "borg" in vals else None
    print("| method | stored bytes | MB | ratio to plain copies | ratio to borg | on disk (du -sb) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, stored, disk in rows:
        s = int(stored)
        rb = f"{s / borg:.3f}x" if borg else "n/a"
        print(f"| {name} | {s:,} | {mb(s)} | {s / plain:.3f}x | {rb} | {int(disk):,} |" if disk != "-"
              else f"| {name} | {s:,} | {mb(s)} | {s / plain:.3f}x | {rb} | - |")


def speed(path):
    _, vals = read_results(path)

    def best(key):
        runs = [tuple(map(float, l.split())) for l in open(vals[key]) if l.strip()]
        return min(u + s for u, s, _ in runs), min(w for _, _, w in runs)

    f32 = int(vals["f32_bytes"])
    size = int(vals["file_bytes"])
    (pa, pa_w), (pr, pr_w) = best("push_auto"), best("push_raw")
    (la, la_w), (lr, lr_w) = best("pull_auto"), best("pull_raw")
    enc = pa - pr
    dec = la - lr
    print(f"one file: {size:,} bytes, {f32:,} of them float32 storages; CPU seconds (user+sys, best of "
          f"{vals['runs']}) / wall seconds:")
    print(f"  push into an empty registry: auto {pa:.2f} / {pa_w:.2f}, raw {pr:.2f} / {pr_w:.2f}")
    print(f"  pull:                        auto {la:.2f} / {la_w:.2f}, raw {lr:.2f} / {lr_w:.2f}")
    if enc > 0:
        print(f"  compression (push auto - push raw CPU):   {f32 / enc / 1e6:,.0f} MB/s per core of float32")
    if dec > 0:
        print(f"  decompression (pull auto - pull raw CPU): {f32 / dec / 1e6:,.0f} MB/s per core of float32")
    else:
        print("  decompression: no measurable CPU over raw")
    print(f"  whole push, auto: {size / pa / 1e6:,.0f} MB/s per CPU second; whole pull, auto: "
          f"{size / la / 1e6:,.0f} MB/s per CPU second")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "cpu":
        cpu(args[0], args[1:])
    elif cmd == "float32-bytes":
        float32_bytes(args[0])
    elif cmd == "check-weights-only":
        check_weights_only(args[0], args[1])
    elif cmd == "table":
        table(args[0])
    elif cmd == "speed":
        speed(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

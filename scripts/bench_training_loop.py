#!/usr/bin/env python3
"""reg in the training loop, measured against the plain way in the same run.

usage: ~/.cache/reg-interop/venv/bin/python scripts/bench_training_loop.py [--mb 512] [--rounds 5] [--reg PATH]

Each measurement is interleaved with its baseline, round by round (these
machines' disks and page cache vary several-fold within an hour), and
reported as the median ratio with its spread (min-max of the per-round
ratios):

1. save: a Lightning-like checkpoint (weights, Adam's two moments, step)
   of --mb MiB, new values every round as training gives them:
   `reg.Registry.save` (torch.save streamed into `reg push --fast -`,
   fsynced by reg) against `torch.save` to a local file + fsync. The
   background job the save starts (compression, deltas) is waited for
   after each round, outside the timed save, and reported: in training
   it runs while the next epoch trains.
   1b. the time `AsyncCheckpointIO.save_checkpoint` blocks the training
   step, wrapping `RegCheckpointIO` against wrapping `TorchCheckpointIO`.
2. one tensor: `reg pull REF --format safetensors --tensors KEY -o -`
   against a full `reg pull REF -o FILE` of the same version.
3. load: `reg.load_state_dict(REF)` against
   `safetensors.torch.load_file` of the same weights from page cache
   (every value read in both: load_file maps the file lazily).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import reg  # noqa: E402


def checkpoint(mb: int, seed: int):
    """weights + exp_avg + exp_avg_sq, about mb MiB in all, in 16 layers."""
    g = torch.Generator().manual_seed(seed)
    per = mb * (1 << 20) // 4 // 3 // 16
    weights = {f"layer{i}.weight": torch.randn(per, generator=g) for i in range(16)}
    state = {i: {"step": torch.tensor(float(seed)), "exp_avg": torch.randn(per, generator=g) * 1e-3,
                 "exp_avg_sq": torch.rand(per, generator=g) * 1e-6} for i in range(16)}
    return {"state_dict": weights, "optimizer_states": [{"state": state, "param_groups": [{"lr": 1e-3}]}],
            "epoch": seed, "global_step": seed * 100}


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(what, ours, base):
    ratios = [o / b for o, b in zip(ours, base)]
    print(f"{what}: median {statistics.median(ratios):.2f}x (spread {min(ratios):.2f}-{max(ratios):.2f}x over "
          f"{len(ratios)} rounds); reg median {statistics.median(ours):.3f} s, baseline median "
          f"{statistics.median(base):.3f} s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reg", default=os.path.join(ROOT, "target", "release", "reg"))
    ap.add_argument("--keep-newest-raw", action="store_true",
                    help="the registry keeps the newest version raw (keep_newest_raw = true): loads map it")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="reg-bench-loop-", dir=os.environ.get("REG_BENCH_DIR"))
    if a.keep_newest_raw:
        # reg reads registry.toml from its working directory (settings
        # apply with an explicit --registry too).
        with open(os.path.join(work, "registry.toml"), "w") as f:
            f.write("[registry]\nkeep_newest_raw = true\n")
        os.chdir(work)
    r = reg.Registry(os.path.join(work, "registry"), binary=a.reg)
    print(f"checkpoint of {a.mb} MiB, {a.rounds} rounds, in {work}"
          f"{' (keep_newest_raw)' if a.keep_newest_raw else ''}", flush=True)

    # 1. save
    ours, base, background = [], [], []
    for i in range(a.rounds):
        obj = checkpoint(a.mb, i)
        path = os.path.join(work, "plain.ckpt")

        def plain():
            with open(path, "wb") as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())

        base.append(timed(plain))
        ours.append(timed(lambda: r.save(obj, "run", source=f"epoch={i}.ckpt")))
        os.remove(path)
        # What the save left to reg's background job (compressing the
        # tensors it stored raw, deltas of the version before), which
        # runs while training goes on: waited for here, outside the
        # timed save, so each round starts as a training save would.
        background.append(timed(r.wait_background))
    report("save (Registry.save vs torch.save + fsync)", ours, base)
    print(f"  background job after each save (runs while training goes on): median "
          f"{statistics.median(background):.3f} s", flush=True)
    du = subprocess.run(["du", "-sb", os.path.join(work, "registry")], capture_output=True, text=True).stdout.split()[0]
    print(f"  after {a.rounds} saves the disk holds the registry only: {int(du) / (1 << 20):.0f} MiB "
          f"({a.rounds} plain files: {a.rounds * a.mb} MiB)", flush=True)

    # 1b. AsyncCheckpointIO: the time the training step is blocked
    from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO

    from reg.lightning import RegCheckpointIO

    ours, base = [], []
    for i in range(a.rounds):
        obj = checkpoint(a.mb, 100 + i)
        for io_, out in ((AsyncCheckpointIO(TorchCheckpointIO()), base),
                         (AsyncCheckpointIO(RegCheckpointIO("async", registry=r)), ours)):
            path = os.path.join(work, f"async-{i}.ckpt")
            out.append(timed(lambda: io_.save_checkpoint(obj, path)))
            io_.teardown()  # the save itself, in Lightning's thread
            if os.path.exists(path):
                os.remove(path)
        r.wait_background()
    report("AsyncCheckpointIO blocked time (RegCheckpointIO vs TorchCheckpointIO)", ours, base)

    # 2. one tensor against a full pull
    r.wait_background()
    ours, base = [], []
    full = os.path.join(work, "full.ckpt")
    for _ in range(a.rounds):
        base.append(timed(lambda: r.run("pull", "run@latest", "-o", full, "--force", "--quiet")))
        ours.append(timed(lambda: r.run_bytes("pull", "run@latest", "--format", "safetensors", "--tensors",
                                              "layer3.weight", "-o", "-", "--quiet")))
    report("one tensor (pull --tensors KEY vs a full pull)", ours, base)

    # 3. load_state_dict against safetensors from page cache
    from safetensors.torch import load_file, save_file

    st = os.path.join(work, "weights.safetensors")
    save_file(checkpoint(a.mb, a.rounds - 1)["state_dict"], st)
    load_file(st)  # into the page cache

    def touch(tensors):
        # load_file maps the file lazily: read every value, in both cases.
        return sum(float(t.sum()) for t in tensors.values())

    ours, base = [], []
    for _ in range(a.rounds):
        base.append(timed(lambda: touch(load_file(st))))
        ours.append(timed(lambda: touch(reg.load_state_dict("run@latest", registry=r))))
    report("load (load_state_dict vs safetensors load_file, page cache)", ours, base)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""torch.distributed.checkpoint into reg, measured against FileSystemWriter.

usage: REG_BIN=target/release/reg ~/.cache/reg-interop/venv/bin/python scripts/bench_dcp.py [--mb 512] [--ranks 4] [--rounds 3]

A model of --mb MiB (float32 weights, its first half frozen: the same
every round, the rest new values) is sharded over --ranks CPU ranks
(gloo, DTensor Shard(0)) and saved with `dcp.save`, round by round
alternating (these machines' disks vary several-fold within an hour):
into a local folder with torch's `FileSystemWriter` (fsyncing its files,
its default), and into reg with `reg.dcp.RegStorageWriter` (the version
committed, durable, before `dcp.save` returns). The time is rank 0's,
from a barrier before the save to one after it. reg's background job
(compressing what the save stored raw, deltas) is waited for between
rounds, outside the timed save: in training it runs while training goes
on. Prints the median ratio with its spread, and the bytes each save of
reg added to the registry against the first.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import reg  # noqa: E402
import reg.dcp  # noqa: E402,F401


def state(mb: int, step: int):
    """--mb MiB of weights in 8 matrices: 0-3 frozen, 4-7 new each step."""
    rows = mb * (1 << 20) // 4 // 8 // 1024
    frozen = torch.Generator().manual_seed(7)
    trained = torch.Generator().manual_seed(1000 + step)
    return {f"layer{i}.weight": torch.randn(rows, 1024, generator=frozen if i < 4 else trained) for i in range(8)}


def _rank(rank, world, port, mb, step, how, target, registry, out):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    import faulthandler

    faulthandler.dump_traceback_later(900, exit=True)  # a rank that hangs says where
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    sd = {k: distribute_tensor(v, mesh, [Shard(0)]) for k, v in state(mb, step).items()}
    if how == "fs":
        writer = dcp.FileSystemWriter(target)
    else:
        writer = reg.dcp.RegStorageWriter("bench", registry=reg.Registry(registry))
    dist.barrier()
    start = time.perf_counter()
    dcp.save({"model": sd, "step": step}, storage_writer=writer)
    dist.barrier()
    took = time.perf_counter() - start
    if rank == 0:
        with open(out, "w") as f:
            f.write(str(took))
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)


def run(world, mb, step, how, target, registry, work):
    out = os.path.join(work, f"took-{how}-{step}")
    mp.spawn(_rank, args=(world, random.randint(20000, 60000), mb, step, how, target, registry, out),
             nprocs=world, join=True)
    with open(out) as f:
        return float(f.read())


def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True).stdout.split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="reg-bench-dcp-", dir=os.environ.get("REG_BENCH_DIR"))
    registry = os.path.join(work, "registry")
    r = reg.Registry(registry)
    print(f"dcp.save of {a.mb} MiB from {a.ranks} ranks, {a.rounds} rounds, in {work}", flush=True)
    ours, base, added = [], [], []
    for step in range(a.rounds):
        folder = os.path.join(work, f"fs-{step}")
        base.append(run(a.ranks, a.mb, step, "fs", folder, registry, work))
        shutil.rmtree(folder)
        before = du(registry) if os.path.exists(registry) else 0
        ours.append(run(a.ranks, a.mb, step, "reg", "", registry, work))
        r.wait_background()
        added.append(du(registry) - before)
    ratios = [o / b for o, b in zip(ours, base)]
    print(f"dcp.save (RegStorageWriter vs FileSystemWriter): median {statistics.median(ratios):.2f}x "
          f"(spread {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds); reg median "
          f"{statistics.median(ours):.3f} s, FileSystemWriter median {statistics.median(base):.3f} s", flush=True)
    later = [x / added[0] for x in added[1:]]
    if later:
        print(f"  bytes each later save added to the registry, against the first (half the model frozen): "
              + ", ".join(f"{x:.2f}x" for x in later), flush=True)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

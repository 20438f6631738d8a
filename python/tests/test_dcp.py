"""torch.distributed.checkpoint through reg (reg.dcp) with real torch, many
CPU ranks over gloo: save from N ranks, load into M (re-sharding), async
save, dedupe of a half-frozen model, every reg command on the version, and
failures that leave nothing behind.

Run by tests/interop/suites/31-python-api.sh.
"""

import os
import random
import shutil
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from harness import assert_installed, check, finish

import reg
import reg.dcp  # noqa: F401 - reg.dcp.RegStorageWriter below

# The spawned ranks import this module again: they find the parent's
# folder in the environment.
if "REG_DCP_TEST_WORK" not in os.environ:
    os.environ["REG_DCP_TEST_WORK"] = tempfile.mkdtemp(prefix="reg-dcp-test-")
WORK = os.environ["REG_DCP_TEST_WORK"]
REGISTRY = os.path.join(WORK, "registry")


def full_state(step: int, frozen_seed: int = 7):
    """A model's full weights at `step`: `enc.*` frozen (the same every
    step), `head.*` trained; about 2.5 MB."""
    g = torch.Generator().manual_seed(frozen_seed)
    t = torch.Generator().manual_seed(100 + step)
    return {
        "enc.w": torch.randn(256, 1024, generator=g),
        "enc.b": torch.randn(256, generator=g),
        "head.w": torch.randn(128, 1024, generator=t),
        "head.b": torch.randn(128, generator=t),
        "odd": torch.randn(7, 5, generator=t),  # not divisible by the ranks
    }


def _init(rank: int, world: int, port: int) -> "torch.distributed.device_mesh.DeviceMesh":
    from torch.distributed.device_mesh import init_device_mesh

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    return init_device_mesh("cpu", (world,))


def _sharded(state, mesh):
    from torch.distributed.tensor import Shard, distribute_tensor

    return {k: distribute_tensor(v, mesh, [Shard(0)]) for k, v in state.items()}


def _finish_rank() -> None:
    """Leave a rank that succeeded: wait for the others, then exit at once
    (gloo's teardown at interpreter exit can abort a process whose work is
    done, which mp.spawn would report as a failure)."""
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)


def _save(rank, world, port, name, step, mode, out):
    mesh = _init(rank, world, port)
    r = reg.Registry(REGISTRY)
    sd = {"model": _sharded(full_state(step), mesh), "step": step, "rank_note": f"saved by {world}"}
    if mode == "no-binary":
        r = reg.Registry(REGISTRY, binary=os.path.join(WORK, "no-such-reg"))
    if mode == "logged":
        r = reg.Registry(REGISTRY, binary=LOGGED_REG)
    writer = (_ExtraItemWriter if mode == "extra" and rank == world - 1 else reg.dcp.RegStorageWriter)(name, registry=r)
    if mode == "fail" and rank == world - 1:
        sd["model"]["bad"] = _Unpicklable()
    try:
        if mode == "async":
            dcp.async_save(sd, storage_writer=writer).result()
        else:
            dcp.save(sd, storage_writer=writer)
    except BaseException as e:
        # What each rank saw, for the checks that read the reason.
        with open(f"{out}.error.{rank}", "w") as f:
            f.write(f"{type(e).__name__}: {e}")
        raise
    if rank == 0:
        with open(out, "w") as f:
            f.write(str(writer.report["version"]))
    _finish_rank()


def _load(rank, world, port, ref, step, out):
    mesh = _init(rank, world, port)
    target = {"model": _sharded({k: torch.zeros_like(v) for k, v in full_state(step).items()}, mesh), "step": -1}
    dcp.load(target, storage_reader=reg.dcp.RegStorageReader(ref, registry=reg.Registry(REGISTRY)))
    want = full_state(step)
    for k, v in target["model"].items():
        assert torch.equal(v.full_tensor(), want[k]), (rank, k)
    assert target["step"] == step, target["step"]
    with open(f"{out}.{rank}", "w") as f:
        f.write("ok")
    _finish_rank()


LOGGED_REG = os.path.join(WORK, "reg-logged")


def _write_logged_reg() -> str:
    """A `reg` that logs its arguments (one line per run) before it runs."""
    from reg._binary import find_binary

    log = os.path.join(WORK, "reg-calls.log")
    with open(LOGGED_REG, "w") as f:
        f.write(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{find_binary()}" "$@"\n')
    os.chmod(LOGGED_REG, 0o755)
    return log


class _ExtraItemWriter(reg.dcp.RegStorageWriter):
    """A rank that reports an item its plan did not list."""

    def write_data(self, plan, planner):
        from torch.distributed.checkpoint.filesystem import _StorageInfo
        from torch.distributed.checkpoint.metadata import MetadataIndex
        from torch.distributed.checkpoint.storage import WriteResult
        from torch.futures import Future

        results = super().write_data(plan, planner).wait()
        ghost = WriteResult(index=MetadataIndex("model.ghost", [0]), size_in_bytes=4,
                            storage_data=_StorageInfo(results[0].storage_data.relative_path, 0, 4))
        fut = Future()
        fut.set_result(results + [ghost])
        return fut


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("this rank cannot serialize its state")


def spawn(fn, world, *args, timeout: float = 600):
    """Run `fn` on `world` ranks; a rank that fails raises here, and ranks
    still running after `timeout` seconds (waiting for each other) are
    killed and reported."""
    ctx = mp.start_processes(fn, args=(world, random.randint(20000, 60000), *args), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise AssertionError(f"{fn.__name__} on {world} ranks still ran after {timeout} s (a rank waits forever)")


def save(name, world, step, mode="sync", timeout: float = 600):
    out = os.path.join(WORK, f"saved-{name}-{step}")
    spawn(_save, world, name, step, mode, out, timeout=timeout)
    with open(out) as f:
        return int(f.read())


def load(ref, world, step):
    out = os.path.join(WORK, f"loaded-{ref.replace('@', '-')}-{world}")
    spawn(_load, world, ref, step, out)
    assert all(os.path.exists(f"{out}.{r}") for r in range(world))


def staging_sessions():
    d = os.path.join(REGISTRY, "staging")
    return os.listdir(d) if os.path.isdir(d) else []


def main() -> None:
    r = reg.Registry(REGISTRY)

    @check("the API under test is the installed wheel's")
    def _():
        assert_installed(reg)

    @check("dcp.save from 4 ranks makes one dcp directory version; nothing staged is left")
    def _():
        v = save("run", 4, step=1)
        shown = r.show(f"run@v{v}")
        assert shown["layout"] == "dcp" and shown["kind"] == "directory", shown["layout"]
        assert shown["global_step"] == 1 or shown["global_step"] is None
        files = {f["path"] for f in shown["files"]}
        assert ".metadata" in files and sum(f.endswith(".distcp") for f in files) == 4, files
        assert staging_sessions() == [], staging_sessions()

    @check("dcp.load re-shards: saved by 4 ranks, loaded by 3, by 2 and by 1, every tensor equal")
    def _():
        for world in (3, 2, 1):
            load("run@latest", world, step=1)

    @check("the version works with every reg command: pull as a folder FileSystemReader and dcp_to_torch_save read")
    def _():
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        folder = os.path.join(WORK, "pulled")
        r.pull("run@latest", folder, force=True)
        torch_file = os.path.join(WORK, "consolidated.pt")
        dcp_to_torch_save(folder, torch_file)
        whole = torch.load(torch_file, weights_only=True)
        for k, v in full_state(1).items():
            assert torch.equal(whole["model"][k], v), k
        st = reg.load_state_dict("run@latest", keys=["model.head.*"], registry=r)
        assert set(st) == {"model.head.w", "model.head.b"}, sorted(st)
        diff = r.diff("run@v1", "run@latest")
        assert diff is not None

    @check("a second save of a half-frozen model writes far fewer bytes; async_save works the same")
    def _():
        before = r.json("stats")["stored_bytes"]
        save("run", 4, step=2, mode="async")
        grew = r.json("stats")["stored_bytes"] - before
        first = r.log("run")[0]
        # The frozen encoder (the larger half) is stored once.
        assert grew <= 0.6 * first["size"], (grew, first["size"])
        load("run@latest", 2, step=2)

    @check("each rank streams its data file into a `reg stage` of its own; the coordinator pushes --staged")
    def _():
        log = _write_logged_reg()
        v = save("run", 4, step=5, mode="logged")
        with open(log) as f:
            calls = [line.split() for line in f]
        stages = [c for c in calls if "stage" in c]
        pushes = [c for c in calls if "push" in c]
        assert len(stages) == 4 and all(c[-2].endswith(".distcp") for c in stages), calls
        assert len(pushes) == 1 and "--staged" in pushes[0], calls
        assert r.show(f"run@v{v}")["layout"] == "dcp"
        assert staging_sessions() == [], staging_sessions()
        load(f"run@v{v}", 3, step=5)
        r.run("verify")  # exit 2 (RegError) on any damage

    @check("a rank that reports an item its plan did not list: the error names the rank, no version")
    def _():
        versions = len(r.log("run"))
        try:
            save("run", 2, step=6, mode="extra")
        except AssertionError:
            raise
        except Exception:  # noqa: BLE001 - the spawned ranks raise
            pass
        else:
            raise AssertionError("the save succeeded")
        with open(os.path.join(WORK, "saved-run-6.error.0")) as f:
            seen = f.read()
        assert "rank 1 wrote 'model.ghost'" in seen and "did not list" in seen, seen[-2000:]
        assert len(r.log("run")) == versions
        r.run("gc")
        assert staging_sessions() == [], staging_sessions()

    @check("a rank that fails leaves no version and no staging folder")
    def _():
        versions = len(r.log("run"))
        try:
            save("run", 2, step=3, mode="fail")
        except Exception:  # noqa: BLE001 - the spawned ranks raise
            pass
        else:
            raise AssertionError("the save succeeded")
        assert len(r.log("run")) == versions
        r.run("gc")
        assert staging_sessions() == [], staging_sessions()

    @check("a coordinator that cannot start the save (no reg binary) fails every rank at once, none waits")
    def _():
        versions = len(r.log("run"))
        try:
            save("run", 3, step=4, mode="no-binary", timeout=120)
        except AssertionError:
            raise  # the ranks did not all end: one waited for the others
        except Exception:  # noqa: BLE001 - the spawned ranks raise (each prints the coordinator's reason)
            pass
        else:
            raise AssertionError("the save succeeded")
        assert len(r.log("run")) == versions

    @check("the reader refuses a file version and a ref that does not exist, naming the ref")
    def _():
        path = os.path.join(WORK, "plain.pt")
        torch.save({"w": torch.ones(3)}, path)
        r.push(path, name="plain")
        for ref, says in (("plain@latest", "not a torch.distributed.checkpoint"), ("nope@latest", "nope")):
            try:
                dcp.load({"w": torch.zeros(3)}, storage_reader=reg.dcp.RegStorageReader(ref, registry=r),
                         no_dist=True)
            except BaseException as e:  # noqa: BLE001 - dcp wraps errors
                assert says in str(e), str(e)
            else:
                raise AssertionError(f"{ref}: loaded")

    shutil.rmtree(WORK, ignore_errors=True)
    finish()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()

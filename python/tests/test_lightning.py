"""Lightning with the installed wheel: pushes in AsyncCheckpointIO's thread,
and folder checkpoints (ModelParallelStrategy's sharded DCP saves, run on
CPU with gloo) pushed as one version and resumed from reg://.

Run by tests/interop/suites/31-python-api.sh.
"""

import filecmp
import os
import shutil
import stat
import tempfile
import threading

from harness import NEEDS_DIRS, assert_installed, check, finish

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import reg
from reg.lightning import RegCheckpointIO, RegistryCallback

WORK = tempfile.mkdtemp(prefix="reg-lightning-test-")
REGISTRY = os.path.join(WORK, "registry")


class Net(L.LightningModule):
    def __init__(self, lr: float = 1e-2, hidden: int = 16, shard: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def configure_model(self):
        if not self.hparams.shard:
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(self.net, mesh=mesh)

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    return DataLoader(TensorDataset(x, (x.sum(1) > 0).long()), batch_size=16)


def trainer(root, epochs, plugins=(), callbacks=(), strategy="auto"):
    return L.Trainer(
        max_epochs=epochs,
        default_root_dir=root,
        plugins=list(plugins),
        strategy=strategy,
        callbacks=[ModelCheckpoint(dirpath=root, monitor="val_loss", save_top_k=-1, filename="{epoch}")] + list(callbacks),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )


class ThreadProbe(RegCheckpointIO):
    """RegCheckpointIO that notes which thread each save (write + push) ran in."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.threads = []

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        self.threads.append(threading.current_thread())
        super().save_checkpoint(checkpoint, path, storage_options=storage_options)


def local_checkpoints(root):
    """Checkpoint files under root (none when nothing was kept locally)."""
    found = []
    for d, _, files in os.walk(root):
        found += [os.path.join(d, f) for f in files if f.endswith(".ckpt")]
    return sorted(found)


def same_file_as_version(r, path, ref):
    out = os.path.join(WORK, "check.ckpt")
    r.pull(ref, out, force=True)
    assert filecmp.cmp(path, out, shallow=False), (path, ref)


def main() -> None:
    L.seed_everything(0)
    r = reg.Registry(REGISTRY)
    os.environ["REG_REGISTRY"] = REGISTRY

    @check("the integration under test is the installed wheel's")
    def _():
        assert_installed(reg)
        import reg_lightning

        assert reg_lightning.RegCheckpointIO is RegCheckpointIO

    @check("AsyncCheckpointIO(RegCheckpointIO): every epoch streamed into the registry from Lightning's "
           "background thread, no local file")
    def _():
        root = os.path.join(WORK, "async")
        io = ThreadProbe("async", registry=r)
        module = Net()
        trainer(root, 3, plugins=[AsyncCheckpointIO(io)]).fit(module, data(0), data(1))
        assert len(io.threads) == 3 and all(t is not threading.main_thread() for t in io.threads), io.threads
        log = r.log("async")
        assert [e["epoch"] for e in log] == [0, 1, 2], log
        assert [e["source"] for e in log] == [f"epoch={e}.ckpt" for e in range(3)], log
        assert local_checkpoints(root) == [], local_checkpoints(root)
        out = os.path.join(WORK, "async-last.ckpt")
        r.pull("async@epoch=2", out, force=True)
        saved = torch.load(out, weights_only=True)["state_dict"]
        assert saved.keys() == module.state_dict().keys()
        assert all(torch.equal(saved[k], v) for k, v in module.state_dict().items())
        assert "best" in r.show("async@best")["tags"]

    @check("ckpt_path='last' with no local files resumes from the registry's newest version")
    def _():
        seen = {}

        class Probe(L.Callback):
            def on_train_start(self, tr, module):
                seen["epoch"], seen["step"] = tr.current_epoch, tr.global_step

        root = os.path.join(WORK, "async")  # where the run above saved (nothing local)
        newest = r.show("async@latest")
        io = AsyncCheckpointIO(RegCheckpointIO("async", registry=r))
        trainer(root, 4, plugins=[io], callbacks=[Probe()]).fit(Net(), data(0), data(1), ckpt_path="last")
        assert seen == {"epoch": newest["epoch"] + 1, "step": newest["global_step"]}, (seen, newest["epoch"])
        assert local_checkpoints(root) == []

    @check("RegCheckpointIO(keep_local=True) writes the file too, and each version is that file byte for byte")
    def _():
        root = os.path.join(WORK, "kept")
        trainer(root, 2, plugins=[RegCheckpointIO("kept", registry=r, keep_local=True)]).fit(Net(), data(0), data(1))
        assert len(local_checkpoints(root)) == 2, local_checkpoints(root)
        for epoch in range(2):
            same_file_as_version(r, os.path.join(root, f"epoch={epoch}.ckpt"), f"kept@epoch={epoch}")

    @check("with no local files: top-k, save_last, every_n_train_steps and ckpt_path='best' keep working")
    def _():
        root = os.path.join(WORK, "topk")
        io = RegCheckpointIO("topk", registry=r)
        mc = ModelCheckpoint(dirpath=root, monitor="val_loss", save_top_k=2, save_last=True,
                             every_n_train_steps=3, filename="{epoch}-{step}")
        t = L.Trainer(max_epochs=3, default_root_dir=root, plugins=[io], callbacks=[mc], logger=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
        t.fit(Net(), data(0), data(1))
        assert local_checkpoints(root) == [], local_checkpoints(root)
        log = r.log("topk")
        # Every save is a version, top-k's removals included; last.ckpt is
        # the newest save again, so it adds a version only when it differs.
        assert len(log) >= 3 and len(io.pushed) >= len(log), (log, io.pushed)
        assert mc.best_model_path and os.path.basename(mc.best_model_path) in {e["source"] for e in log}
        # The version tagged best is the one saved to best_model_path (reg's
        # @best ranks by score and breaks ties toward the newer version,
        # Lightning toward the older: docs/cli.md).
        tagged = [e for e in log if "best" in e["tags"]]
        assert [e["source"] for e in tagged] == [os.path.basename(mc.best_model_path)], (tagged, mc.best_model_path)
        seen = {}

        class Probe(L.Callback):
            def on_validation_start(self, tr, module):
                seen["w"] = {k: v.clone() for k, v in module.state_dict().items()}

        t.callbacks.append(Probe())
        t.validate(Net(), data(1), ckpt_path="best")
        out = os.path.join(WORK, "topk-best.ckpt")
        r.pull(f"topk@v{tagged[0]['version']}", out, force=True)
        want = torch.load(out, weights_only=True)["state_dict"]
        assert all(torch.equal(seen["w"][k], v) for k, v in want.items()), "ckpt_path='best' loaded another version"

    @check("AsyncCheckpointIO(RegCheckpointIO) resumes from reg://")
    def _():
        at = r.show("async@epoch=1")
        seen = {}

        class Probe(L.Callback):
            def on_train_start(self, tr, module):
                seen["epoch"], seen["step"] = tr.current_epoch, tr.global_step

        io = AsyncCheckpointIO(RegCheckpointIO("async-resumed", registry=r))
        trainer(os.path.join(WORK, "async2"), 3, plugins=[io], callbacks=[Probe()]).fit(
            Net(), data(0), data(1), ckpt_path="reg://async@epoch=1"
        )
        assert seen == {"epoch": 2, "step": at["global_step"]}, (seen, at["global_step"])
        assert [e["epoch"] for e in r.log("async-resumed")] == [2]

    @check("a failing push under AsyncCheckpointIO still fails the run with reg's error")
    def _():
        broken = os.path.join(WORK, "broken")
        r_broken = reg.Registry(broken)
        r_broken.ls()  # creates it
        with open(os.path.join(broken, "FORMAT"), "w") as f:
            f.write("not a registry\n")
        try:
            io = AsyncCheckpointIO(RegCheckpointIO("x", registry=r_broken))
            trainer(os.path.join(WORK, "async3"), 2, plugins=[io]).fit(Net(), data(0), data(1))
        except reg.RegError as e:
            assert "not a reg registry" in str(e), str(e)
        else:
            raise AssertionError("training succeeded although every push failed")

    @check("RegistryCallback with AsyncCheckpointIO(TorchCheckpointIO) pushes each file once it is written")
    def _():
        root = os.path.join(WORK, "cb-async")
        cb = RegistryCallback("cb-async", registry=r)
        trainer(root, 2, plugins=[AsyncCheckpointIO(TorchCheckpointIO())], callbacks=[cb]).fit(Net(), data(0), data(1))
        assert cb.pushed == ["cb-async@v1", "cb-async@v2"], cb.pushed
        for epoch in range(2):
            same_file_as_version(r, os.path.join(root, f"epoch={epoch}.ckpt"), f"cb-async@epoch={epoch}")

    @check("RegistryCallback beside RegCheckpointIO does not push twice")
    def _():
        cb = RegistryCallback("twice", registry=r)
        io = RegCheckpointIO("twice", registry=r)
        trainer(os.path.join(WORK, "twice"), 2, plugins=[io], callbacks=[cb]).fit(Net(), data(0), data(1))
        assert [e["epoch"] for e in r.log("twice")] == [0, 1] and cb.pushed == [] and len(io.pushed) == 2

    # ------------------------------------------------------------ folders

    sharded_root = os.path.join(WORK, "sharded")

    @check(NEEDS_DIRS + "sharded checkpoints (ModelParallelStrategy folders) are pushed as one version each")
    def _():
        from lightning.pytorch.strategies import ModelParallelStrategy

        cb = RegistryCallback("sharded", registry=r)
        t = trainer(sharded_root, 2, callbacks=[cb], strategy=ModelParallelStrategy())
        t.fit(Net(shard=True), data(0), data(1))
        folders = sorted(os.listdir(sharded_root))
        assert folders == ["epoch=0.ckpt", "epoch=1.ckpt"], folders
        assert all(os.path.isdir(os.path.join(sharded_root, f)) for f in folders)
        assert cb.pushed == ["sharded@v1", "sharded@v2"], cb.pushed
        log = r.log("sharded")
        assert [e["epoch"] for e in log] == [0, 1], log
        shown = r.show("sharded@epoch=1")
        assert shown.get("kind") == "directory" and shown.get("layout") == "lightning-sharded", (
            shown.get("kind"),
            shown.get("layout"),
        )
        pulled = reg.pull_dir("sharded@epoch=1")
        mode = stat.S_IMODE(os.stat(os.path.dirname(pulled)).st_mode)
        assert mode == 0o700, oct(mode)
        cmp = filecmp.dircmp(os.path.join(sharded_root, "epoch=1.ckpt"), pulled)
        assert not (cmp.left_only or cmp.right_only or cmp.diff_files), (cmp.left_only, cmp.right_only, cmp.diff_files)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        assert not mismatch and not errors, (mismatch, errors)

    @check(NEEDS_DIRS + "a sharded run resumes from reg://NAME@epoch=N into a folder, optimizer state included")
    def _():
        from lightning.pytorch.strategies import ModelParallelStrategy

        at = r.show("sharded@epoch=0")
        seen = {}

        class Probe(L.Callback):
            def on_train_start(self, tr, module):
                seen["epoch"], seen["step"] = tr.current_epoch, tr.global_step
                opt = tr.optimizers[0]
                seen["adam"] = sorted({float(s["step"]) for s in opt.state.values() if "step" in s})

        cb = RegistryCallback("sharded-resumed", registry=r)
        t = trainer(os.path.join(WORK, "sharded2"), 2, callbacks=[cb, Probe()], strategy=ModelParallelStrategy())
        t.fit(Net(shard=True), data(0), data(1), ckpt_path="reg://sharded@epoch=0")
        assert seen["epoch"] == 1 and seen["step"] == at["global_step"], (seen, at["global_step"])
        assert seen["adam"] == [float(at["global_step"])], seen
        assert [e["epoch"] for e in r.log("sharded-resumed")] == [1]

    @check(NEEDS_DIRS + "load_state_dict of a sharded version gives the model's consolidated weights")
    def _():
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        full = os.path.join(WORK, "consolidated.pt")
        dcp_to_torch_save(os.path.join(sharded_root, "epoch=1.ckpt"), full)
        want = torch.load(full, weights_only=True)["state_dict"]
        got = reg.load_state_dict("sharded@epoch=1")
        assert sorted(got) == sorted(want), (sorted(got), sorted(want))
        for k in want:
            assert torch.equal(got[k], want[k]), k

    finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)

"""Real-Lightning checks of reg_lightning (run by tests/interop/run.sh).

    REG_BIN=target/release/reg python python/tests/test_plugin.py
"""

import os
import stat
import subprocess
import sys
import tempfile
import traceback

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import reg_lightning  # noqa: E402
from reg_lightning import RegCheckpointIO, RegError, RegistryCallback  # noqa: E402


class Net(L.LightningModule):
    def __init__(self, lr: float = 1e-2, hidden: int = 16, tags=("a", "b"), schedule=None):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    return DataLoader(TensorDataset(x, (x.sum(1) > 0).long()), batch_size=16)


def trainer(root, epochs, plugins=(), callbacks=()):
    return L.Trainer(
        max_epochs=epochs,
        default_root_dir=root,
        plugins=list(plugins),
        callbacks=[ModelCheckpoint(dirpath=root, monitor="val_loss", save_top_k=-1, filename="{epoch}")] + list(callbacks),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )


def reg(*args):
    out = subprocess.run([os.environ["REG_BIN"], *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout


RESULTS = []


def check(name):
    def wrap(fn):
        try:
            fn()
            RESULTS.append((name, None))
        except Exception:  # noqa: BLE001 - report every failure
            RESULTS.append((name, traceback.format_exc()))
        return fn

    return wrap


def main():
    import json

    work = tempfile.mkdtemp()
    os.environ["REG_HOME"] = os.path.join(work, "registry")
    L.seed_everything(0)

    @check("three epochs with the plugin give three versions with epochs and hparams")
    def _():
        trainer(os.path.join(work, "run1"), 3, plugins=[RegCheckpointIO("plug")]).fit(Net(lr=0.02), data(0), data(1))
        log = json.loads(reg("log", "plug", "--json"))
        assert [e["epoch"] for e in log] == [0, 1, 2], log
        shown = json.loads(reg("show", "plug@epoch=2", "--json"))
        assert shown["hyper_parameters"]["lr"] == 0.02, shown["hyper_parameters"]
        assert shown["hyper_parameters"]["tags"] == ["a", "b"], shown["hyper_parameters"]
        assert shown["model_checkpoint"]["monitor"] == "val_loss"
        assert "best" in json.loads(reg("show", "plug@best", "--json"))["tags"]

    @check("a second trainer resumes from reg://plug@epoch=1 with optimizer state")
    def _():
        at_epoch1 = json.loads(reg("show", "plug@epoch=1", "--json"))
        seen = {}

        class Probe(L.Callback):
            def on_train_start(self, tr, module):
                seen["start_step"] = tr.global_step
                seen["start_epoch"] = tr.current_epoch
                opt = tr.optimizers[0]
                seen["adam_steps"] = [float(s["step"]) for s in opt.state.values() if "step" in s]

        t = trainer(os.path.join(work, "run2"), 4, plugins=[RegCheckpointIO("plug-resumed")], callbacks=[Probe()])
        t.fit(Net(lr=0.02), data(0), data(1), ckpt_path="reg://plug@epoch=1")
        assert seen["start_epoch"] == 2, seen
        assert seen["start_step"] == at_epoch1["global_step"], (seen, at_epoch1["global_step"])
        assert seen["adam_steps"] and all(s == at_epoch1["global_step"] for s in seen["adam_steps"]), seen
        log = json.loads(reg("log", "plug-resumed", "--json"))
        assert [e["epoch"] for e in log] == [2, 3], log

    @check("load_from_checkpoint reads reg:// refs")
    def _():
        m = Net.load_from_checkpoint("reg://plug@epoch=2")
        assert m.hparams.lr == 0.02
        best = Net.load_from_checkpoint("reg://plug@best")
        assert isinstance(best, Net)

    @check("the registry callback pushes with a user's own CheckpointIO")
    def _():
        cb = RegistryCallback("cb")
        trainer(os.path.join(work, "run3"), 2, callbacks=[cb]).fit(Net(), data(0), data(1))
        assert len(cb.pushed) == 2, cb.pushed
        assert [e["epoch"] for e in json.loads(reg("log", "cb", "--json"))] == [0, 1]

    @check("a run whose val_loss goes NaN trains on; every version reads; @best is never the NaN epoch")
    def _():
        class Diverging(Net):
            def validation_step(self, batch, i):
                x, y = batch
                loss = nn.functional.cross_entropy(self.net(x), y)
                if self.current_epoch == 1:
                    loss = loss * float("nan")
                self.log("val_loss", loss)

        root = os.path.join(work, "run-nan")
        trainer(root, 3, plugins=[RegCheckpointIO("nan-run")]).fit(Diverging(), data(0), data(1))
        log = json.loads(reg("log", "nan-run", "--json"))
        assert [e["epoch"] for e in log] == [0, 1, 2], log
        shown = json.loads(reg("show", "nan-run@epoch=1", "--json"))
        # Lightning records a NaN monitor as the worst score (inf for min);
        # a checkpoint written by hand may carry the NaN itself
        # (tests/diverged.rs): either way it reads back and is never best.
        assert shown["scores"]["val_loss"]["value"] in ("nan", "inf"), shown["scores"]
        assert shown["model_checkpoint"]["current_score"] in ("nan", "inf"), shown["model_checkpoint"]
        best = json.loads(reg("show", "nan-run@best", "--json"))
        assert best["epoch"] != 1, best["epoch"]
        for e in log:
            out = os.path.join(work, f"nan-run-v{e['version']}.ckpt")
            reg("pull", f"nan-run@v{e['version']}", "-o", out)
            ckpt = torch.load(out, weights_only=False)
            assert ckpt["epoch"] == e["epoch"], (ckpt["epoch"], e)
        reg("deltas", "--queued")
        reg("verify", "--full")

    @check("a failing push fails the training run loudly")
    def _():
        ro = os.path.join(work, "readonly")
        os.makedirs(ro)
        reg("--registry", ro, "init")
        for dirpath, dirs, files in os.walk(ro):
            for n in dirs + files:
                os.chmod(os.path.join(dirpath, n), stat.S_IREAD | stat.S_IEXEC)
        os.chmod(ro, stat.S_IREAD | stat.S_IEXEC)
        try:
            if os.geteuid() == 0:
                # root ignores permission bits: make the registry unusable instead.
                os.chmod(ro, 0o755)
                with open(os.path.join(ro, "FORMAT"), "w") as f:
                    f.write("not a registry\n")
            try:
                trainer(os.path.join(work, "run4"), 1, plugins=[RegCheckpointIO("x", registry=ro)]).fit(Net(), data(0), data(1))
            except RegError as e:
                assert str(e), "empty message"
                return
            raise AssertionError("training succeeded although every push failed")
        finally:
            os.chmod(ro, 0o755)

    @check("a missing reg binary is a clear error")
    def _():
        old = os.environ.get("REG_BIN")
        os.environ["REG_BIN"] = "/nonexistent/reg"
        try:
            reg_lightning.RegClient().log("plug")
        except reg_lightning.RegNotFoundError as e:
            assert "install" in str(e)
        else:
            raise AssertionError("no error")
        finally:
            os.environ["REG_BIN"] = old

    failed = [(n, tb) for n, tb in RESULTS if tb]
    for n, tb in failed:
        print(f"FAIL {n}\n{tb}")
    for n, tb in RESULTS:
        if not tb:
            print(f"ok   {n}")
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

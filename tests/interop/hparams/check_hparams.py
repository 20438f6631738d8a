#!/usr/bin/env python3
"""Hyperparameter types and optimizers the fixtures do not have, made here
with real Lightning (not committed), against what torch itself loads.

usage: check_hparams.py --reg BIN --scratch DIR

For each run (a LightningModule trained for a step, saved with
`trainer.save_checkpoint`), checks:

  round trip       `reg pull` gives the file back byte for byte
  hparams          `reg show --json`'s hyper_parameters equal the plain JSON
                   of what `torch.load` gives (docs/cli.md's rules: OmegaConf
                   containers, AttributeDict, Namespace, numpy scalars and
                   paths as plain JSON; nan/inf as strings; ints beyond
                   64 bits as decimal strings; tuples as lists)
  optimizer        the optimizer's class name, its per-parameter state keys
                   and its param groups' lr equal those in the file
  scheduler        the scheduler's class name
  diff             `reg diff --only hparams` of two runs names exactly the
                   keys whose values differ

The last line is `N passed, M failed`.
"""
import argparse
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

PASSED, FAILED = 0, 0


def check(name, ok, why=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {name}")
    else:
        FAILED += 1
        print(f"FAIL {name}: {why}")


def reg(*args):
    return subprocess.run([ARGS.reg, "--registry", REGISTRY, *args], capture_output=True, text=True)


def reg_json(*args):
    r = reg(*args, "--json")
    if r.returncode != 0:
        raise RuntimeError(f"reg {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def plain(v):
    """The plain JSON of a loaded hyperparameter value, by docs/cli.md."""
    if OmegaConf.is_config(v):
        return plain(OmegaConf.to_container(v))
    if isinstance(v, argparse.Namespace):
        return plain(vars(v))
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        return plain(v.item())
    if isinstance(v, pathlib.PurePath):
        return str(v)
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**63 else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    raise TypeError(f"no plain JSON rule for {type(v)}")


@dataclasses.dataclass
class Sizes:
    width: int = 8
    depth: int = 2


class Model(L.LightningModule):
    def __init__(self, hparams, make_optimizer, make_scheduler):
        super().__init__()
        self.save_hyperparameters(hparams)
        self.make_optimizer = make_optimizer
        self.make_scheduler = make_scheduler
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def training_step(self, batch, _):
        return self.net(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        opt = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.make_scheduler(opt)}


def train(path, hparams, make_optimizer, make_scheduler=None):
    torch.manual_seed(0)
    model = Model(hparams, make_optimizer, make_scheduler)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 4)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    trainer.save_checkpoint(path)


RUNS = [
    (
        "omegaconf",
        OmegaConf.create({"lr": 0.1, "model": {"depth": 3, "act": "gelu"}, "layers": [64, 32], "seed": None}),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=50),
    ),
    (
        "namespace",
        argparse.Namespace(lr=0.01, name="run-7", flag=True, betas=(0.9, 0.99)),
        lambda p: torch.optim.Adagrad(p, lr=0.01),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
    ),
    (
        "numpy-and-paths",
        {
            "lr": np.float32(0.25),
            "steps": np.int64(1000),
            "flag": np.bool_(True),
            "data": pathlib.Path("/data/train"),
            "sizes": dataclasses.asdict(Sizes()),
        },
        lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True, momentum=0.5),
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
    ),
    (
        "special-numbers",
        {"big": 2**70, "neg_big": -(2**65), "inf": float("inf"), "ninf": float("-inf"), "nan": float("nan"), "tuple": (1, 2.5, "x")},
        lambda p: torch.optim.RAdam(p, lr=0.001, decoupled_weight_decay=True, weight_decay=0.01),
        None,
    ),
    (
        "lbfgs",
        {"lr": 1.0, "history_size": 5, "seed": 7},
        lambda p: torch.optim.LBFGS(p, lr=1.0, history_size=5),
        None,
    ),
    (
        "adamax",
        {"lr": 0.002, "note": "unicode ✓ é", "seed": 7},
        lambda p: torch.optim.Adamax(p, lr=0.002),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
    ),
]


def state_keys(opt_state):
    keys = set()
    for s in opt_state["state"].values():
        keys.update(s.keys())
    return sorted(keys)


def main():
    made = {}
    for name, hparams, make_optimizer, make_scheduler in RUNS:
        path = os.path.join(ARGS.scratch, f"{name}.ckpt")
        try:
            train(path, hparams, make_optimizer, make_scheduler)
        except Exception as e:  # a broken run is this script's failure
            check(f"{name}: training run", False, repr(e))
            continue
        made[name] = path
        loaded = torch.load(path, map_location="cpu", weights_only=False)
        r = reg("push", path, "--name", name)
        if r.returncode != 0:
            check(f"{name}: push", False, r.stderr.strip())
            continue
        out = os.path.join(ARGS.scratch, f"{name}.pulled")
        r = reg("pull", name, "-o", out)
        check(
            f"{name}: pull is byte-identical",
            r.returncode == 0 and open(out, "rb").read() == open(path, "rb").read(),
            r.stderr.strip(),
        )
        shown = reg_json("show", name)
        want = plain(loaded["hyper_parameters"])
        check(
            f"{name}: hyper_parameters are the plain JSON of what torch loads",
            shown["hyper_parameters"] == want,
            f"reg {json.dumps(shown['hyper_parameters'])[:400]} != {json.dumps(want)[:400]}",
        )
        opt = loaded["optimizer_states"][0]
        got = shown["optimizers"][0] if shown["optimizers"] else {}
        want_kind = type(make_optimizer([nn.Parameter(torch.zeros(1))])).__name__
        check(f"{name}: optimizer kind", got.get("kind") == want_kind, f"{got.get('kind')} != {want_kind}")
        check(
            f"{name}: optimizer state keys",
            sorted(got.get("state_keys", [])) == state_keys(opt),
            f"{got.get('state_keys')} != {state_keys(opt)}",
        )
        check(
            f"{name}: param group lr",
            [g.get("lr") for g in got.get("param_groups", [])] == [g["lr"] for g in opt["param_groups"]],
            f"{[g.get('lr') for g in got.get('param_groups', [])]} != {[g['lr'] for g in opt['param_groups']]}",
        )
        if make_scheduler is not None:
            params = [nn.Parameter(torch.zeros(1))]
            want_sched = type(make_scheduler(make_optimizer(params))).__name__
            kinds = [s.get("kind") for s in shown["schedulers"]]
            check(f"{name}: scheduler kind", kinds == [want_sched], f"{kinds} != {[want_sched]}")
    # The hparam diff of two runs names exactly the keys that differ.
    if {"lbfgs", "adamax"} <= made.keys():
        d = reg_json("diff", "lbfgs", "adamax", "--only", "hparams")
        text = json.dumps(d)
        a = plain(torch.load(made["lbfgs"], weights_only=False)["hyper_parameters"])
        b = plain(torch.load(made["adamax"], weights_only=False)["hyper_parameters"])
        differing = sorted(k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>"))
        same = sorted(k for k in a.keys() & b.keys() if a[k] == b[k])
        check(
            "diff --only hparams names the differing keys",
            bool(differing) and bool(same) and all(f'"{k}"' in text for k in differing) and not any(f'"{k}"' in text for k in same),
            f"differing {differing}, same {same}: {text[:400]}",
        )
    print(f"{PASSED} passed, {FAILED} failed")
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--reg", required=True)
    p.add_argument("--scratch", required=True)
    ARGS = p.parse_args()
    REGISTRY = os.path.join(ARGS.scratch, "registry")
    sys.exit(main())

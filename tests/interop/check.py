#!/usr/bin/env python3
"""Check reg against real torch, Lightning and safetensors.

usage: check.py --reg BIN --fixtures DIR --scratch DIR [-k SUBSTR] [-v]

For every checkpoint under DIR (lightning/**, torch/*.pt,
safetensors/*.safetensors; never bad/ nor expected/) this pushes the file
into a fresh registry (SCRATCH/registry) and checks what comes back:

  plain pull        byte-identical, and torch.load (or safetensors) reads
                    an object equal to the source's
  --weights-only    torch.load(weights_only=True) reads it; Lightning files
                    keep exactly what Lightning's save_weights_only keeps,
                    the state_dict is unchanged (dtype, shape, stride,
                    storage offset, bytes, ties); plain dicts come back whole;
                    MLP.load_from_checkpoint(w) works
  --format safetensors
                    safetensors reads it; every tensor equals the source
                    tensor at the same key; Lightning exports hold the whole
                    state_dict and epoch / global_step metadata

Every check is a pass or a fail; a check whose input could not be made
(because an earlier step failed) fails as "not run", so the number of checks
does not depend on how far the binary gets. The last line is
`N passed, M failed`; the exit code is 1 when M > 0.
"""
import argparse
import collections
import glob
import json
import math
import os
import subprocess
import sys
import traceback
import warnings
from argparse import Namespace

import torch
import torch.nn as nn
import lightning as L
from safetensors import safe_open
from safetensors.torch import load_file

warnings.filterwarnings("ignore")


# ------------------------------------------------------------------ the model
# Copied from tests/fixtures/tools/make_fixtures.py: load_from_checkpoint needs the
# same class, with the same hyperparameters, to rebuild the fixtures' model.

class Small(L.LightningModule):
    """Copied from tests/fixtures/tools/make_extra_fixtures.py."""

    def __init__(self, lr=0.05, width=16):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(6, width), nn.Tanh(), nn.Linear(width, 2))


class MLP(L.LightningModule):
    def __init__(self, lr=1e-3, hidden=128, dropout=0.1, optimizer="adam",
                 schedule={"step_size": 1, "gamma": 0.9}, tags=["baseline", "mlp"], note=None):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Linear(32, hidden)
        for p in self.encoder.parameters():
            p.requires_grad = False
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 64),
                                  nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, i):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(filter(lambda p: p.requires_grad, self.parameters()), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, **self.hparams.schedule)
        return [opt], [sched]


# What Lightning's dump_checkpoint(weights_only=True) writes (plus the
# datamodule's hparams and state when there is one); and what it drops.
LIGHTNING_WEIGHTS_ONLY_KEYS = ["epoch", "global_step", "pytorch-lightning_version", "state_dict",
                               "loops", "hparams_name", "hyper_parameters", "hparams_type",
                               "datamodule_hparams_name", "datamodule_hyper_parameters",
                               "datamodule_hparams_type"]
LIGHTNING_DROPPED_KEYS = ["optimizer_states", "lr_schedulers", "callbacks"]


# ------------------------------------------------------------------ comparing

def tensor_diff(a, b, path, layout=True, exact_class=True):
    """None when a and b are the same tensor value; else why not.

    Values are compared bit for bit (so NaN equals NaN and -0.0 differs from
    0.0), which is torch.equal made exact. With layout, stride, storage
    offset and requires_grad must match too, and with exact_class the tensor
    class (nn.Parameter or not)."""
    if a.dtype != b.dtype:
        return f"{path}: dtype {a.dtype} vs {b.dtype}"
    if tuple(a.shape) != tuple(b.shape):
        return f"{path}: shape {list(a.shape)} vs {list(b.shape)}"
    if layout:
        if a.stride() != b.stride():
            return f"{path}: stride {a.stride()} vs {b.stride()}"
        if a.storage_offset() != b.storage_offset():
            return f"{path}: storage_offset {a.storage_offset()} vs {b.storage_offset()}"
        if exact_class and type(a) is not type(b):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        if a.requires_grad != b.requires_grad:
            return f"{path}: requires_grad {a.requires_grad} vs {b.requires_grad}"
    if a.numel():
        x = a.detach().reshape(-1).contiguous().view(torch.uint8)
        y = b.detach().reshape(-1).contiguous().view(torch.uint8)
        if not torch.equal(x, y):
            return f"{path}: tensor values differ"
    return None


def deep_diff(a, b, path="$", exact_types=True):
    """None when a and b hold equal objects; else the first difference.

    exact_types: the classes of mappings (dict, OrderedDict) and tensors
    (nn.Parameter, Tensor) must match; without it they may differ (key
    order, requires_grad and layout must still match)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        return tensor_diff(a, b, path, exact_class=exact_types)
    if isinstance(a, dict) and isinstance(b, dict):
        if exact_types and type(a) is not type(b):
            return f"{path}: {type(a).__name__} vs {type(b).__name__}"
        if list(a.keys()) != list(b.keys()):
            return f"{path}: keys {list(a.keys())[:10]} vs {list(b.keys())[:10]}"
        for k in a:
            d = deep_diff(a[k], b[k], f"{path}.{k}", exact_types)
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return f"{path}: {type(a).__name__}[{len(a)}] vs {type(b).__name__}[{len(b)}]"
        for i, (x, y) in enumerate(zip(a, b)):
            d = deep_diff(x, y, f"{path}[{i}]", exact_types)
            if d:
                return d
        return None
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return None
    if hasattr(a, "__dict__") and not isinstance(a, type):
        return deep_diff(vars(a), vars(b), path, exact_types)
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def plain(x):
    """Hyperparameters as plain data: mappings -> dict, sequences -> list."""
    try:
        from omegaconf import Container, OmegaConf
        if isinstance(x, Container):
            return plain(OmegaConf.to_container(x, resolve=True))
    except ImportError:
        pass
    if isinstance(x, Namespace):
        x = vars(x)
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, torch.Tensor):  # numpy scalars
        return x.item()
    return x


def plain_equal(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(plain_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(plain_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def tensors_in(obj, path=()):
    """Every tensor in an object tree, by its path (keys as str(), joined by '/')."""
    out = {}
    if isinstance(obj, torch.Tensor):
        out["/".join(path)] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(tensors_in(v, path + (str(k),)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(tensors_in(v, path + (str(i),)))
    elif isinstance(obj, Namespace):
        out.update(tensors_in(vars(obj), path))
    return out


def shared_groups(tensors):
    """The sets (of 2+ paths) of tensors that share one storage."""
    by_ptr = collections.defaultdict(set)
    for p, t in tensors.items():
        s = t.untyped_storage()
        if s.nbytes() == 0:  # empty tensors have no storage worth tying
            continue
        by_ptr[s.data_ptr()].add(p)
    return {frozenset(g) for g in by_ptr.values() if len(g) > 1}


def ties_diff(src, out):
    """None when out's tensors share storages exactly as src's do."""
    a, b = shared_groups(src), shared_groups(out)
    if a == b:
        return None
    lost = [sorted(g) for g in a - b]
    new = [sorted(g) for g in b - a]
    return f"storage sharing differs: source groups not kept {lost}, output groups {new}"


# ------------------------------------------------------------------ running reg

class Reg:
    def __init__(self, binary, home):
        self.binary, self.env = binary, dict(os.environ, REG_HOME=home)

    def __call__(self, *args):
        p = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True,
                           timeout=600)
        return p.returncode, p.stdout, p.stderr


def why(rc, err):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    return f"exit {rc}: {lines[0] if lines else '(no message)'}"


# ------------------------------------------------------------------ checks

class Checks:
    def __init__(self, verbose):
        self.passed = self.failed = self.skipped = 0
        self.verbose = verbose

    def record(self, fixture, name, error):
        if error is None:
            self.passed += 1
            if self.verbose:
                print(f"ok   {fixture}: {name}")
        else:
            self.failed += 1
            print(f"FAIL {fixture}: {name}: {error}")

    def skip(self, fixture, name, reason):
        self.skipped += 1
        if self.verbose:
            print(f"skip {fixture}: {name}: {reason}")


def run(fixture, check, fn):
    """Run one check: fn returns None (pass) or a reason; an exception is a fail."""
    try:
        err = fn()
    except Exception as e:
        err = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        if os.environ.get("REG_INTEROP_TRACEBACK"):
            traceback.print_exc()
    check.record(*fixture, err)
    return err is None


class Fixture:
    def __init__(self, fixtures_dir, path):
        self.path = path
        self.rel = os.path.relpath(path, fixtures_dir)
        self.name = "".join(c if c.isalnum() else "-" for c in self.rel).strip("-")
        self.is_safetensors = path.endswith(".safetensors")
        if self.is_safetensors:
            self.obj = load_file(path)
            with safe_open(path, "pt") as f:
                self.metadata = f.metadata()
        else:
            self.obj = torch.load(path, map_location="cpu", weights_only=False)
        self.is_lightning = (isinstance(self.obj, dict) and "state_dict" in self.obj
                             and "pytorch-lightning_version" in self.obj)
        self.is_flat = (isinstance(self.obj, dict) and bool(self.obj)
                        and all(isinstance(v, torch.Tensor) for v in self.obj.values()))

    def state_dict(self):
        """The tensors a safetensors export must hold, by key (None: no rule)."""
        if self.is_lightning:
            return self.obj["state_dict"]
        if self.is_flat:
            return self.obj
        return None


def discover(fixtures_dir):
    files = sorted(glob.glob(os.path.join(fixtures_dir, "lightning", "**", "*"), recursive=True))
    files = [f for f in files if os.path.isfile(f)]
    files += sorted(glob.glob(os.path.join(fixtures_dir, "torch", "*.pt")))
    files += sorted(glob.glob(os.path.join(fixtures_dir, "safetensors", "*.safetensors")))
    return files


def check_fixture(fx, reg, out_dir, checks):
    c = lambda name: (fx.rel, name)  # noqa: E731
    os.makedirs(out_dir, exist_ok=True)

    # ---- push
    def push():
        rc, out, err = reg("push", fx.path, "--name", fx.name, "--json")
        if rc != 0:
            return why(rc, err)
        j = json.loads(out)
        if j.get("name") != fx.name or not j.get("created"):
            return f"unexpected push JSON: {out.strip()[:200]}"
        return None
    if not run(c("push"), checks, push):
        for name in ("pull", "pull byte-identical", "pull loads equal"):
            checks.record(*c(name), "not run (push failed)")
        return

    # ---- plain pull: exact bytes, equal object
    pulled = os.path.join(out_dir, "pulled" + os.path.splitext(fx.path)[1])
    def pull():
        rc, out, err = reg("pull", fx.name, "-o", pulled, "--json")
        if rc != 0:
            return why(rc, err)
        j = json.loads(out)
        if j.get("bytes") != os.path.getsize(fx.path):
            return f"JSON says {j.get('bytes')} bytes, source has {os.path.getsize(fx.path)}"
        return None
    if run(c("pull"), checks, pull):
        def same_bytes():
            a, b = open(fx.path, "rb").read(), open(pulled, "rb").read()
            if a == b:
                return None
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return f"{len(b)} bytes vs source {len(a)}; first difference at byte {at}"
        run(c("pull byte-identical"), checks, same_bytes)

        def loads_equal():
            if fx.is_safetensors:
                d = deep_diff(fx.obj, load_file(pulled), exact_types=False)
                if d:
                    return d
                with safe_open(pulled, "pt") as f:
                    md = f.metadata()
                return None if md == fx.metadata else f"metadata {md} vs {fx.metadata}"
            return deep_diff(fx.obj, torch.load(pulled, map_location="cpu", weights_only=False))
        run(c("pull loads equal"), checks, loads_equal)
    else:
        for name in ("pull byte-identical", "pull loads equal"):
            checks.record(*c(name), "not run (pull failed)")

    check_weights_only(fx, reg, out_dir, checks)
    check_safetensors_export(fx, reg, out_dir, checks)


def check_weights_only(fx, reg, out_dir, checks):
    c = lambda name: (fx.rel, "weights-only: " + name)  # noqa: E731
    w = os.path.join(out_dir, "weights.ckpt")

    if fx.is_safetensors:
        # A safetensors file has nothing but weights: reg may refuse, or give
        # the tensors back; either is fine, but what it gives must be right.
        rc, out, err = reg("pull", fx.name, "--weights-only", "-o", w)
        if rc != 0:
            checks.skip(*c("pull"), f"refused for a safetensors input ({why(rc, err)})")
            return
        def same_tensors():
            try:
                got = torch.load(w, map_location="cpu", weights_only=True)
            except Exception:
                got = load_file(w)
            if isinstance(got, dict) and "state_dict" in got and fx.obj.keys() != got.keys():
                got = got["state_dict"]
            return deep_diff(dict(sorted(fx.obj.items())), dict(sorted(got.items())),
                             exact_types=False)
        run(c("equals the source tensors"), checks, same_tensors)
        return

    # docs/cli.md: parameters become plain tensors (so classes are not
    # compared here); the state dict's _metadata (module versions) is kept.
    names = ["loads with weights_only=True"]
    if fx.is_lightning:
        names += ["keys are Lightning's save_weights_only keys", "plain values equal the source",
                  "hyper_parameters equal as plain data", "state_dict equal", "state_dict _metadata kept",
                  "state_dict ties kept", "MLP.load_from_checkpoint"]
    else:
        names += ["whole object equal", "ties kept"]

    def pull():
        rc, out, err = reg("pull", fx.name, "--weights-only", "-o", w)
        return None if rc == 0 else why(rc, err)
    if not run(c("pull"), checks, pull):
        for n in names:
            checks.record(*c(n), "not run (pull --weights-only failed)")
        return

    got = {}
    def safe_load():
        got["obj"] = torch.load(w, map_location="cpu", weights_only=True)
        return None
    if not run(c(names[0]), checks, safe_load):
        for n in names[1:]:
            checks.record(*c(n), "not run (torch.load(weights_only=True) failed)")
        return
    obj, src = got["obj"], fx.obj

    if not fx.is_lightning:
        run(c("whole object equal"), checks, lambda: deep_diff(src, obj, exact_types=False))
        run(c("ties kept"), checks, lambda: ties_diff(tensors_in(src), tensors_in(obj)))
        return

    def keys():
        if not isinstance(obj, dict):
            return f"a {type(obj).__name__}, not a dict"
        want = [k for k in src if k in LIGHTNING_WEIGHTS_ONLY_KEYS]
        bad = [k for k in obj if k in LIGHTNING_DROPPED_KEYS]
        if bad:
            return f"keeps {bad}"
        if set(obj) != set(want):
            return f"keys {list(obj)}, want {want}"
        return None
    run(c("keys are Lightning's save_weights_only keys"), checks, keys)

    def values():
        for k in ("epoch", "global_step", "pytorch-lightning_version", "loops", "hparams_name"):
            if k in src:
                if k not in obj:
                    return f"{k} missing"
                d = deep_diff(src[k], obj[k], f"$.{k}", exact_types=False)
                if d:
                    return d
        return None
    run(c("plain values equal the source"), checks, values)

    def hparams():
        if "hyper_parameters" not in src:
            return None
        if "hyper_parameters" not in obj:
            return "hyper_parameters missing"
        a, b = plain(src["hyper_parameters"]), plain(obj["hyper_parameters"])
        return None if plain_equal(a, b) else f"{b!r} vs source {a!r}"
    run(c("hyper_parameters equal as plain data"), checks, hparams)

    sd_src = src["state_dict"]
    sd = obj.get("state_dict") if isinstance(obj, dict) else None

    def state_dict():
        if not isinstance(sd, dict):
            return f"state_dict is a {type(sd).__name__}"
        return deep_diff(sd_src, sd, "$.state_dict", exact_types=False)
    run(c("state_dict equal"), checks, state_dict)

    def metadata():
        want = getattr(sd_src, "_metadata", None)
        have = getattr(sd, "_metadata", None)
        return None if want == have else f"_metadata {have!r}, want {want!r}"
    run(c("state_dict _metadata kept"), checks, metadata)

    def ties():
        if not isinstance(sd, dict):
            return "no state_dict"
        return ties_diff(tensors_in(sd_src), tensors_in(sd))
    run(c("state_dict ties kept"), checks, ties)

    def lightning_load():
        # The module class of each fixture set (tests/fixtures/tools/make_extra_fixtures.py
        # makes `monitored` with Small).
        cls = Small if "/monitored/" in fx.rel else MLP
        m = cls.load_from_checkpoint(w, map_location="cpu", weights_only=True)
        msd = m.state_dict()
        if list(msd) != list(sd_src):
            return f"module state_dict keys {list(msd)} vs {list(sd_src)}"
        for k in sd_src:  # values only: the module keeps its own layout
            d = tensor_diff(sd_src[k], msd[k], f"module.{k}", layout=False)
            if d:
                return d
        # The module as the source file loads it: a class keeps only the
        # hparams its __init__ takes (the diverged fixtures add others).
        want = plain(dict(cls.load_from_checkpoint(fx.path, map_location="cpu", weights_only=False).hparams))
        got_hp = plain(dict(m.hparams))
        return None if plain_equal(want, got_hp) else f"module hparams {got_hp} vs {want}"
    run(c("MLP.load_from_checkpoint"), checks, lightning_load)


def check_safetensors_export(fx, reg, out_dir, checks):
    c = lambda name: (fx.rel, "safetensors export: " + name)  # noqa: E731
    s = os.path.join(out_dir, "export.safetensors")
    names = ["loads", "every tensor equals the source's at its key"]
    if fx.state_dict() is not None:
        names.append("holds every state_dict tensor" if fx.is_lightning else "holds every tensor")
    if fx.is_lightning:
        names.append("metadata has epoch and global_step")
    if fx.is_safetensors and fx.metadata:
        names.append("keeps the source's metadata")

    def pull():
        rc, out, err = reg("pull", fx.name, "--format", "safetensors", "-o", s)
        return None if rc == 0 else why(rc, err)
    if not run(c("pull"), checks, pull):
        for n in names:
            checks.record(*c(n), "not run (pull --format safetensors failed)")
        return

    got = {}
    def loads():
        got["t"] = load_file(s)
        with safe_open(s, "pt") as f:
            got["md"] = f.metadata() or {}
        return None
    if not run(c("loads"), checks, loads):
        for n in names[1:]:
            checks.record(*c(n), "not run (safetensors could not load it)")
        return
    t, md = got["t"], got["md"]

    # Where an exported key may point: the "/"-joined path of any tensor in
    # the source; for Lightning files also a state_dict key on its own.
    sd = fx.state_dict()
    lookup = tensors_in(fx.obj)
    if fx.is_lightning:
        lookup.update(sd)

    def equal_at_key():
        if not t:
            return "no tensors exported"
        for k, v in t.items():
            if k not in lookup:
                return f"exported key {k!r} names no tensor of the source"
            d = tensor_diff(lookup[k], v, k, layout=False)
            if d:
                return d
        return None
    run(c("every tensor equals the source's at its key"), checks, equal_at_key)

    if sd is not None:
        def complete():
            missing = [k for k in sd if str(k) not in t and f"state_dict/{k}" not in t]
            return f"missing {missing}" if missing else None
        run(c(names[2]), checks, complete)

    if fx.is_lightning:
        def meta():
            bad = [f"{k}={md.get(k)!r} (want {str(fx.obj[k])!r})"
                   for k in ("epoch", "global_step") if md.get(k) != str(fx.obj[k])]
            if bad:
                return f"metadata {md}: " + ", ".join(bad)
            # Not required, but when reg writes them they must be right.
            if "hyper_parameters" in md and "hyper_parameters" in fx.obj:
                got_hp, want = json.loads(md["hyper_parameters"]), plain(fx.obj["hyper_parameters"])
                if not plain_equal(want, got_hp):
                    return f"metadata hyper_parameters {got_hp} vs source {want}"
            v = md.get("pytorch-lightning_version")
            if v is not None and v != fx.obj["pytorch-lightning_version"]:
                return f"metadata pytorch-lightning_version {v!r} vs {fx.obj['pytorch-lightning_version']!r}"
            return None
        run(c("metadata has epoch and global_step"), checks, meta)

    if fx.is_safetensors and fx.metadata:
        def keeps_md():
            lost = {k: v for k, v in fx.metadata.items() if md.get(k) != v}
            return f"source metadata {lost} not in {md}" if lost else None
        run(c("keeps the source's metadata"), checks, keeps_md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reg", required=True, help="the reg binary")
    ap.add_argument("--fixtures", required=True, help="tests/fixtures")
    ap.add_argument("--scratch", required=True, help="an empty directory to work in")
    ap.add_argument("-k", dest="only", help="only fixtures whose path contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="print passes and skips too")
    a = ap.parse_args()

    checks = Checks(a.verbose)
    try:
        reg = Reg(os.path.abspath(a.reg), os.path.join(a.scratch, "registry"))
        files = [f for f in discover(a.fixtures) if not a.only or a.only in os.path.relpath(f, a.fixtures)]
        if not files:
            checks.record("(fixtures)", "discover", f"no checkpoint fixtures under {a.fixtures}")
        for f in files:
            try:
                fx = Fixture(a.fixtures, f)
            except Exception as e:
                checks.record(os.path.relpath(f, a.fixtures), "source loads", f"{type(e).__name__}: {e}")
                continue
            before = checks.failed
            check_fixture(fx, reg, os.path.join(a.scratch, "out", fx.name), checks)
            if a.verbose or checks.failed == before:
                print(f"{'ok  ' if checks.failed == before else 'FAIL'} {fx.rel}")
    except Exception as e:
        checks.record("(harness)", "run", f"{type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        if checks.skipped:
            print(f"{checks.skipped} skipped")
        print(f"{checks.passed} passed, {checks.failed} failed")
        sys.stdout.flush()
    sys.exit(1 if checks.failed else 0)


if __name__ == "__main__":
    main()

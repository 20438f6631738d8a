"""The Python API with real torch: load_state_dict and load_checkpoint
against torch.load of the fixture files, and the per-user cache behind
reg:// (issue 19: private folder, files checked by blake3, exists() that
only says False for "no such version").

Run by tests/interop/suites/31-python-api.sh with the wheel installed.
"""

import glob
import os
import shutil
import stat
import tempfile

from harness import assert_installed, check, finish, fixtures

import torch

import reg
import reg.fs

WORK = tempfile.mkdtemp(prefix="reg-api-test-")
REGISTRY = os.path.join(WORK, "registry")
SERIES = {
    name: sorted(glob.glob(os.path.join(fixtures(), "lightning", name, "epoch=*.ckpt")))
    for name in ("mlp", "mlp-finetune", "monitored")
}


def same_tensors(got, want, what):
    assert sorted(got) == sorted(want), (what, sorted(set(got) ^ set(want)))
    for k, w in want.items():
        g = got[k]
        assert g.dtype == w.dtype and g.shape == w.shape, (what, k, g.dtype, w.dtype, g.shape, w.shape)
        assert torch.equal(g, w), (what, k)


def same_tree(got, want, path="checkpoint"):
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor), path
        assert got.dtype == want.dtype and got.shape == want.shape and got.stride() == want.stride(), path
        assert torch.equal(got, want), path
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), (path, list(got), list(want))
        for k in want:
            same_tree(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            same_tree(g, w, f"{path}/{i}")
    else:
        assert got == want, (path, got, want)


def temp_entries():
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("reg-pull-")}


def main() -> None:
    r = reg.Registry(REGISTRY)
    os.environ["REG_REGISTRY"] = REGISTRY
    os.environ["XDG_CACHE_HOME"] = os.path.join(WORK, "xdg")
    os.environ.pop("REG_LIGHTNING_CACHE", None)
    for name, files in SERIES.items():
        for path in files:
            r.push(path, name=name)

    @check("the API under test is the installed wheel's")
    def _():
        assert_installed(reg)
        assert reg.find_binary() == reg.bundled_binary() is not None

    @check("load_state_dict equals torch.load(file)['state_dict'] tensor for tensor, for every fixture series version")
    def _():
        for name, files in SERIES.items():
            for i, path in enumerate(files):
                want = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
                same_tensors(reg.load_state_dict(f"{name}@v{i + 1}"), want, f"{name}@v{i + 1}")

    @check("load_state_dict by epoch, best and tag refs picks the same version torch reads")
    def _():
        r.tag("mlp@v3", "candidate")
        want = torch.load(SERIES["mlp"][2], weights_only=True)["state_dict"]
        same_tensors(reg.load_state_dict("mlp@candidate"), want, "tag")
        same_tensors(reg.load_state_dict("mlp@epoch=2", registry=r), want, "epoch")

    @check("load_state_dict of a plain state-dict file and of a safetensors file")
    def _():
        from safetensors.torch import load_file

        sd_file = os.path.join(fixtures(), "torch", "mlp_state_dict.pt")
        r.push(sd_file, name="plain")
        same_tensors(reg.load_state_dict("plain"), torch.load(sd_file, weights_only=True), "plain")
        st_file = os.path.join(fixtures(), "safetensors", "mlp.safetensors")
        r.push(st_file, name="st")
        same_tensors(reg.load_state_dict("st"), load_file(st_file), "safetensors")

    @check("load_state_dict maps raw blobs (keep_newest_raw): equal tensors, writes stay private, views and ties exported")
    def _():
        work = os.path.join(WORK, "newest-raw")
        os.makedirs(work)
        with open(os.path.join(work, "registry.toml"), "w") as f:
            f.write("[registry]\npath = \"reg\"\nkeep_newest_raw = true\n")
        here = os.getcwd()
        os.chdir(work)  # reg reads registry.toml from its working directory
        try:
            raw = reg.Registry()
            g = torch.Generator().manual_seed(3)
            sd = {f"layer{i}.weight": torch.randn(128, 256, generator=g) for i in range(4)}
            sd["layer0.bias"] = torch.randn(7, generator=g).to(torch.bfloat16)
            sd["tied"] = sd["layer1.weight"]
            sd["view"] = sd["layer2.weight"][:, :5]
            for epoch in range(2):
                state = {k: v + epoch for k, v in sd.items()}
                state["view"] = state["layer2.weight"][:, :5]
                raw.save({"state_dict": state, "epoch": epoch}, "run", source="run.ckpt")
                raw.wait_background()
                located = raw.json("locate", "run@latest")
                mapped = {t["name"] for t in located["mapped"]}
                assert {"layer0.weight", "layer3.weight"} <= mapped and "view" in located["exported"], located
                got = reg.load_state_dict("run@latest", registry=raw)
                same_tensors(got, {k: v.contiguous() for k, v in state.items()}, f"mapped epoch {epoch}")
                got["layer0.weight"].add_(1)  # copy-on-write: the registry is untouched
                got["tied"].add_(1)
                assert torch.equal(got["layer1.weight"], state["layer1.weight"]), "a tie shares memory"
            # The older version is encoded now (deltas against the newer):
            # its big tensors are exported (a tiny blob may stay raw).
            older = {t["name"] for t in raw.json("locate", "run@v1")["mapped"]}
            assert not older & {f"layer{i}.weight" for i in range(4)}, older
            old = {k: v.contiguous() for k, v in sd.items()}
            same_tensors(reg.load_state_dict("run@v1", registry=raw), old, "compressed epoch 0")
            same_tensors(reg.load_state_dict("run@latest", registry=raw, keys=["layer3.*"]),
                         {"layer3.weight": sd["layer3.weight"] + 1}, "keys")
            raw.run("verify")
        finally:
            os.chdir(here)

    @check("load_state_dict right after a fast save, while reg's job compresses: equal tensors every time")
    def _():
        g = torch.Generator().manual_seed(5)
        for i in range(4):
            state = {f"w{j}": torch.randn(256, 256, generator=g) for j in range(6)}
            r.save({"state_dict": state}, "racing", source="racing.ckpt")
            same_tensors(reg.load_state_dict("racing@latest", registry=r), state, f"save {i}")
        r.wait_background()

    @check("load_state_dict(weights_only=False) reads the original pickle, views intact")
    def _():
        want = torch.load(SERIES["mlp"][1], weights_only=False)["state_dict"]
        got = reg.load_state_dict("mlp@v2", weights_only=False)
        same_tree(got, want, "state_dict")

    @check("load_state_dict(map_location='meta') puts the tensors on that device")
    def _():
        got = reg.load_state_dict("mlp@v1", map_location="meta")
        assert got and all(t.device.type == "meta" for t in got.values())

    @check("load_checkpoint equals torch.load(file, weights_only=True): optimizer, loops, callbacks, everything")
    def _():
        for i, path in enumerate(SERIES["monitored"]):
            same_tree(reg.load_checkpoint(f"monitored@v{i + 1}"), torch.load(path, map_location="cpu", weights_only=True))

    @check("loading writes no checkpoint file that outlives the call")
    def _():
        before = temp_entries()
        cached = set(os.listdir(reg.cache_dir()))
        reg.load_state_dict("mlp@v4")
        reg.load_checkpoint("mlp@v4")
        assert temp_entries() == before, temp_entries() - before
        assert set(os.listdir(reg.cache_dir())) == cached

    @check("the wheel's binary streams pulls to stdout (reg pull -o -), so loading touches no disk at all")
    def _():
        assert r.supports_stdout(), "reg pull --help does not mention stdout: pull_bytes would go through a temp folder"
        before = temp_entries()
        with open(SERIES["mlp"][2], "rb") as f:
            assert reg.pull_bytes("mlp@v3") == f.read()
        assert temp_entries() == before

    @check("loading an unknown ref is VersionNotFoundError")
    def _():
        for fn in (reg.load_state_dict, reg.load_checkpoint):
            try:
                fn("mlp@v99")
            except reg.VersionNotFoundError as e:
                assert "matches no version" in str(e)
            else:
                raise AssertionError(f"{fn.__name__} of mlp@v99 succeeded")

    # ------------------------------------------------------------ the cache

    @check("the cache folder is per user ($XDG_CACHE_HOME/reg, else ~/.cache/reg) and 0700")
    def _():
        d = reg.cache_dir()
        assert d == os.path.join(WORK, "xdg", "reg"), d
        st = os.stat(d)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid(), (oct(st.st_mode), st.st_uid)
        old_xdg, old_home = os.environ.pop("XDG_CACHE_HOME"), os.environ["HOME"]
        os.environ["HOME"] = os.path.join(WORK, "home")
        old_mask = os.umask(0)  # the folder is 0700 whatever the umask allows
        try:
            d = reg.cache_dir()
            assert d == os.path.join(WORK, "home", ".cache", "reg"), d
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
        finally:
            os.umask(old_mask)
            os.environ["XDG_CACHE_HOME"], os.environ["HOME"] = old_xdg, old_home

    @check("a cache folder others can write, owned by another user, or not a folder is refused")
    def _():
        def refused(path, why):
            os.environ["REG_LIGHTNING_CACHE"] = path
            try:
                reg.cache_dir()
            except reg.CacheError as e:
                assert path in str(e), str(e)
            else:
                raise AssertionError(f"cache {path} accepted: {why}")
            finally:
                del os.environ["REG_LIGHTNING_CACHE"]

        shared = os.path.join(WORK, "shared-cache")
        os.mkdir(shared)
        os.chmod(shared, 0o1777)  # what a shared temp folder looks like
        refused(shared, "world-writable")
        readable = os.path.join(WORK, "readable-cache")
        os.mkdir(readable, 0o755)
        os.chmod(readable, 0o755)
        refused(readable, "group and others may read")
        a_file = os.path.join(WORK, "a-file")
        open(a_file, "w").close()
        refused(a_file, "not a directory")
        if os.geteuid() == 0:  # only root can give a folder away
            theirs = os.path.join(WORK, "their-cache")
            os.mkdir(theirs, 0o700)
            os.chown(theirs, 65534, 65534)
            refused(theirs, "owned by nobody")
            link = os.path.join(WORK, "their-link")
            os.symlink(os.path.join(WORK, "xdg", "reg"), link)
            os.lchown(link, 65534, 65534)
            refused(link, "a symlink another user owns")
        own = os.path.join(WORK, "own-cache")
        os.environ["REG_LIGHTNING_CACHE"] = own
        try:
            assert reg.cache_dir() == own and stat.S_IMODE(os.stat(own).st_mode) == 0o700
        finally:
            del os.environ["REG_LIGHTNING_CACHE"]

    @check("a planted file with the right size and the wrong bytes is not loaded")
    def _():
        import lightning.pytorch as pl  # noqa: F401 - reg:// through Lightning's own loader
        from lightning.fabric.utilities.cloud_io import _load as pl_load

        shown = r.show("mlp@v2")
        planted = os.path.join(reg.cache_dir(), shown["id"] + ".file")
        with open(SERIES["mlp"][0], "rb") as f:
            other = f.read()  # v1's bytes: a real checkpoint, same size, other weights
        assert len(other) == shown["size"]
        with open(planted, "wb") as f:
            f.write(other)
        loaded = pl_load("reg://mlp@v2", map_location="cpu")
        want = torch.load(SERIES["mlp"][1], weights_only=True)
        same_tensors(loaded["state_dict"], want["state_dict"], "reg://mlp@v2")
        assert loaded["epoch"] == 1
        with open(planted, "rb") as f, open(SERIES["mlp"][1], "rb") as g:
            assert f.read() == g.read(), "the planted file is still in the cache"

    @check("a cached file that matches its blake3 is reused, not pulled again")
    def _():
        first = reg.fs.fetch("reg://mlp@v3")
        st1 = os.stat(first)
        again = reg.fs.fetch("reg://mlp@v3")
        st2 = os.stat(again)
        assert first == again and (st1.st_ino, st1.st_mtime_ns) == (st2.st_ino, st2.st_mtime_ns)
        assert os.path.basename(first) == r.show("mlp@v3")["id"] + ".file"

    @check("exists() is False only for no such version; a missing binary or a damaged registry raise")
    def _():
        import fsspec

        fs = fsspec.filesystem("reg")
        assert fs.exists("reg://mlp@v1") and fs.exists("reg://monitored@best")
        assert not fs.exists("reg://mlp@v99") and not fs.exists("reg://no-such-model")
        try:
            fsspec.filesystem("reg", binary="/nonexistent/reg").exists("reg://mlp@v1")
        except reg.BinaryNotFoundError:
            pass
        else:
            raise AssertionError("exists() hid a missing binary")
        broken = os.path.join(WORK, "broken")
        shutil.copytree(REGISTRY, broken)
        with open(os.path.join(broken, "FORMAT"), "w") as f:
            f.write("not a registry\n")
        try:
            fsspec.filesystem("reg", registry=broken).exists("reg://mlp@v1")
        except reg.VersionNotFoundError:
            raise AssertionError("a damaged registry reads as 'no such version'")
        except reg.RegError as e:
            assert "not a reg registry" in str(e), str(e)
        else:
            raise AssertionError("exists() hid a damaged registry")

    @check("load_state_dict(keys=...) and reg.open give torch.load's tensors for the keys asked, and only those")
    def _():
        import fnmatch

        for name, files in SERIES.items():
            want = torch.load(files[-1], map_location="cpu", weights_only=True)["state_dict"]
            ref = f"{name}@v{len(files)}"
            first = next(iter(want))
            prefix = first.split(".")[0] + ".*"
            some = reg.load_state_dict(ref, keys=[prefix])
            assert set(some) == {k for k in want if fnmatch.fnmatchcase(k, prefix)}, (ref, sorted(some))
            same_tensors(some, {k: want[k] for k in some}, ref)
            with reg.open(ref) as f:
                assert set(f.keys()) == set(want), (ref, f.keys())
                assert f.metadata().get("epoch") is not None
                for k in list(want)[:3]:
                    assert torch.equal(f.get_tensor(k), want[k]), (ref, k)
                    assert f.get_slice_info(k)["shape"] == list(want[k].shape)
                try:
                    f.get_tensor("no.such.key")
                except KeyError:
                    pass
                else:
                    raise AssertionError("an unknown key was not a KeyError")
        try:
            reg.load_state_dict(ref, keys=["no.such.*"])
        except reg.RegError as e:
            assert "no.such.*" in str(e) and ref.split("@")[0] in str(e), str(e)
        else:
            raise AssertionError("a glob matching nothing was accepted")

    @check("Registry.save streams torch.save into reg push -: the version is torch.save's bytes, named by source")
    def _():
        import io

        obj = {"state_dict": {"w": torch.randn(64, 32), "b": torch.zeros(32)}, "epoch": 4, "lr": float("nan")}
        want = io.BytesIO()
        torch.save(obj, want)
        report = r.save(obj, "streamed", source="epoch=4.ckpt")
        assert report["created"] and report["name"] == "streamed", report
        out = os.path.join(WORK, "streamed.ckpt")
        r.pull("streamed@latest", out, force=True)
        with open(out, "rb") as f:
            assert f.read() == want.getvalue(), "the version differs from torch.save's bytes"
        assert r.log("streamed")[-1]["source"] == "epoch=4.ckpt"
        # The same object again is the same bytes: no new version.
        assert not r.save(obj, "streamed", source="epoch=4.ckpt")["created"]

    @check("a stream reg refuses (not a checkpoint, cut short, an unsafe pickle) raises RegError and stores nothing")
    def _():
        import io
        import pickle

        before = r.log("streamed")
        good = io.BytesIO()
        torch.save({"w": torch.ones(1000)}, good)

        class Evil:
            def __reduce__(self):
                return (os.system, ("true",))

        cases = {
            "not a checkpoint": lambda out: out.write(b"hello" * 1000),
            "cut short": lambda out: out.write(good.getvalue()[: len(good.getvalue()) // 2]),
            "unsafe pickle": lambda out: torch.save({"x": Evil()}, out, pickle_module=pickle),
        }
        for what, write in cases.items():
            try:
                r.push_stream(write, "streamed")
            except reg.RegError as e:
                assert str(e) and "\n" not in str(e), (what, str(e))
            else:
                raise AssertionError(f"{what}: accepted")
        assert r.log("streamed") == before

    finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)

"""The installed wheel, without torch: its reg binary, `python -m reg`, the
Registry API against the Lightning fixture series, errors as RegError.

Run by tests/interop/suites/30-python-wheel.sh inside a fresh venv that
has only the wheel (and its dependencies) installed, PATH without cargo.
"""

import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from harness import assert_installed, check, finish, fixtures

import reg

WORK = tempfile.mkdtemp(prefix="reg-wheel-test-")
REGISTRY = os.path.join(WORK, "registry")
SERIES = sorted(glob.glob(os.path.join(fixtures(), "lightning", "mlp", "epoch=*.ckpt")))
VENV_BIN = os.path.dirname(sys.executable)


def main() -> None:
    r = reg.Registry(REGISTRY)

    @check("the package is the installed wheel and runs the reg binary it installed")
    def _():
        assert_installed(reg)
        bundled = reg.bundled_binary()
        assert bundled == os.path.realpath(os.path.join(VENV_BIN, "reg")), (bundled, VENV_BIN)
        assert reg.find_binary() == bundled
        assert shutil.which("cargo") is None and shutil.which("rustc") is None, "PATH has a Rust toolchain"

    @check("the wheel's binary comes before REG_BIN and PATH")
    def _():
        old = os.environ.get("REG_BIN")
        os.environ["REG_BIN"] = "/nonexistent/reg"
        try:
            assert reg.find_binary() == reg.bundled_binary()
            assert r.ls() == []
        finally:
            if old is None:
                del os.environ["REG_BIN"]
            else:
                os.environ["REG_BIN"] = old

    @check("python -m reg runs the CLI: same output, exit codes and errors as reg")
    def _():
        a = subprocess.run([sys.executable, "-m", "reg", "--version"], capture_output=True, text=True)
        b = subprocess.run(["reg", "--version"], capture_output=True, text=True)
        assert a.returncode == 0 and a.stdout == b.stdout and a.stdout.startswith("reg "), (a, b)
        bad = subprocess.run(
            [sys.executable, "-m", "reg", "--registry", REGISTRY, "show", "nosuchmodel"], capture_output=True, text=True
        )
        assert bad.returncode == 1, bad
        assert bad.stderr.startswith("reg: error: no model named"), bad.stderr

    @check("push the fixture series: versions with epochs, tags and messages")
    def _():
        for i, path in enumerate(SERIES):
            report = r.push(path, name="mlp", tag=f"e{i}", message=f"epoch {i}")
            assert report["name"] == "mlp" and report["version"] == i + 1, report
            assert report["created"] is True and report["logical_bytes"] == os.path.getsize(path)
        log = r.log("mlp")
        assert [e["version"] for e in log] == list(range(1, len(SERIES) + 1)), log
        assert [e["epoch"] for e in log] == list(range(len(SERIES))), log
        assert [e["message"] for e in log] == [f"epoch {i}" for i in range(len(SERIES))]
        assert [(m["name"], m["versions"]) for m in r.ls()] == [("mlp", len(SERIES))], r.ls()

    @check("push without a name takes the file stem; an identical push adds nothing")
    def _():
        first = r.push(SERIES[0])
        assert first["name"] == "epoch-00", first  # reg makes the stem a valid name
        again = r.push(SERIES[0], name="mlp")
        assert again["created"] is False and again["version"] == 1, again

    @check("show: identity, epoch, hyper_parameters, tensors, the file's blake3")
    def _():
        import blake3

        shown = r.show("mlp@e2")
        assert shown["version"] == 3 and shown["epoch"] == 2 and "e2" in shown["tags"], shown
        assert shown["size"] == os.path.getsize(SERIES[2])
        with open(SERIES[2], "rb") as f:
            assert shown["blake3"] == blake3.blake3(f.read()).hexdigest()
        assert isinstance(shown["hyper_parameters"], dict) and shown["hyper_parameters"]
        assert any(t["path"].startswith("state_dict/") for t in shown["tensors"])

    @check("diff: the CLI's JSON, with --stats numbers for changed tensors")
    def _():
        d = r.diff("mlp@v1", "mlp@v2")
        assert d["a"]["version"] == 1 and d["b"]["version"] == 2, d["a"]
        assert d["tensors"]["changed"], d["tensors"]
        epoch = [(m["old"], m["new"]) for m in d["meta"] if m["path"] == "epoch"]
        assert epoch == [(0, 1)], d["meta"]
        s = r.diff("mlp@v1", "mlp@v2", stats=True)
        numeric = [c for c in s["tensors"]["changed"] if "rel_l2" in c]
        assert numeric and all(c["max_abs_diff"] > 0 for c in numeric), s["tensors"]["changed"][:2]

    @check("pull writes the exact bytes; an existing output needs force")
    def _():
        out = os.path.join(WORK, "pulled.ckpt")
        report = r.pull("mlp@epoch=1", out)
        assert report["version"] == 2 and report["bytes"] == os.path.getsize(SERIES[1]), report
        with open(out, "rb") as a, open(SERIES[1], "rb") as b:
            assert a.read() == b.read()
        try:
            r.pull("mlp@epoch=1", out)
        except reg.RegError as e:
            assert e.code == 1 and "exists" in str(e), (e.code, str(e))
        else:
            raise AssertionError("pull overwrote an existing file without force")
        r.pull("mlp@v1", out, force=True)
        with open(out, "rb") as a, open(SERIES[0], "rb") as b:
            assert a.read() == b.read()

    @check("pull_bytes: the original bytes and the safetensors export, in memory")
    def _():
        os.environ["REG_REGISTRY"] = REGISTRY
        try:
            with open(SERIES[3], "rb") as f:
                assert reg.pull_bytes("mlp@epoch=3") == f.read()
            st = reg.pull_bytes("mlp@epoch=3", export="safetensors")
        finally:
            del os.environ["REG_REGISTRY"]
        (n,) = struct.unpack("<Q", st[:8])
        header = json.loads(st[8 : 8 + n])
        names = {t["path"][len("state_dict/"):] for t in r.show("mlp@epoch=3")["tensors"] if t["path"].startswith("state_dict/")}
        assert set(header) - {"__metadata__"} == names, (sorted(header), sorted(names))
        assert header["__metadata__"]["epoch"] == "3", header["__metadata__"]

    @check("errors: unknown names and refs are VersionNotFoundError with reg's message")
    def _():
        for ref, start in (("nosuch", "no model named"), ("mlp@v99", "mlp@v99 matches no version"), ("mlp@epoch=42", "mlp@epoch=42")):
            try:
                r.show(ref)
            except reg.VersionNotFoundError as e:
                assert e.code == 1 and str(e).startswith(start), (ref, str(e))
                assert "\n" not in str(e) and not str(e).startswith("reg:")
            else:
                raise AssertionError(f"show {ref} succeeded")

    @check("errors: a file reg refuses is a RegError (exit 1) naming it, not VersionNotFoundError")
    def _():
        bad = os.path.join(fixtures(), "bad", "garbage.ckpt")
        try:
            r.push(bad, name="bad")
        except reg.VersionNotFoundError:
            raise AssertionError("a refused file reads as 'not found'")
        except reg.RegError as e:
            assert e.code == 1 and "garbage.ckpt" in str(e), str(e)
            assert e.command == "push"
        else:
            raise AssertionError("garbage was pushed")

    @check("errors: damage in the registry is a RegError with exit code 2")
    def _():
        damaged = os.path.join(WORK, "damaged")
        shutil.copytree(REGISTRY, damaged)
        blobs = sorted(p for p in glob.glob(os.path.join(damaged, "blobs", "**", "*"), recursive=True) if os.path.isfile(p))
        assert blobs, "no blob files"
        for p in blobs:  # every blob: whichever the version needs is damaged
            with open(p, "r+b") as f:
                f.seek(max(0, os.path.getsize(p) // 2))
                f.write(b"\x00garbage\xff")
        try:
            reg.Registry(damaged).pull("mlp@v1", os.path.join(WORK, "from-damaged.ckpt"))
        except reg.RegError as e:
            assert e.code == 2, (e.code, str(e))
        else:
            raise AssertionError("a damaged registry pulled")

    @check("errors: a missing binary is BinaryNotFoundError saying how to install")
    def _():
        try:
            reg.Registry(REGISTRY, binary="/nonexistent/reg").log("mlp")
        except reg.BinaryNotFoundError as e:
            assert "pip install" in str(e), str(e)
        else:
            raise AssertionError("no error")

    @check("the old import name reg_lightning works without Lightning installed, and reg:// is an fsspec protocol")
    def _():
        import fsspec

        import reg_lightning

        assert reg_lightning.RegClient is reg.Registry and reg_lightning.RegError is reg.RegError
        fs = fsspec.filesystem("reg", registry=REGISTRY)
        assert fs.exists("reg://mlp@v2") and not fs.exists("reg://mlp@v99") and not fs.exists("reg://nosuch")
        with fsspec.open("reg://mlp@epoch=0", "rb", registry=REGISTRY) as f, open(SERIES[0], "rb") as g:
            assert f.read() == g.read()

    finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)

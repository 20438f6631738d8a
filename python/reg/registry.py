"""``Registry``: one registry, reached by running the ``reg`` binary and
reading its ``--json`` output."""

import io
import json
import os
import subprocess
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from ._binary import INSTALL_HINT, find_binary
from .errors import BinaryNotFoundError, RegError, classify

PathLike = Union[str, "os.PathLike[str]"]

_ERROR_PREFIX = "reg: error: "
_stdout_support: Dict[str, bool] = {}
_stdout_lock = threading.Lock()


def _error_from(stderr: str, code: int, command: Optional[str]) -> RegError:
    """reg's one-line error (the last ``reg: error:`` line) as a RegError."""
    lines = [line for line in stderr.splitlines() if line.startswith(_ERROR_PREFIX)]
    if lines:
        message = lines[-1][len(_ERROR_PREFIX):]
    else:
        rest = [line for line in stderr.splitlines() if line.strip()]
        message = rest[-1] if rest else f"reg {command or ''} exited with code {code}".replace("  ", " ")
    return classify(message, code, command)


class Registry:
    """A reg registry.

    ``path`` is the registry directory (``reg --registry PATH``); with
    ``None`` reg finds it as on the command line: ``$REG_HOME``, a
    ``registry.toml`` in the working directory or a parent, else the user
    data dir. ``binary`` names a reg binary to run instead of the one
    :func:`reg.find_binary` picks (the wheel's, ``$REG_BIN``, ``PATH``).

    Every method runs one reg command and returns what its ``--json``
    prints (see docs/cli.md for each shape); a failure raises
    :class:`~reg.RegError` with reg's one-line message and exit code.

    >>> reg = Registry("/tmp/my-registry")          # doctest: +SKIP
    >>> reg.push("epoch=3.ckpt", name="mnist")["version"]
    4
    """

    def __init__(self, path: Optional[PathLike] = None, *, binary: Optional[PathLike] = None):
        #: The registry directory given (absolute), or None to let reg find it.
        self.path: Optional[str] = os.path.abspath(os.fspath(path)) if path is not None else None
        #: An explicit reg binary, or None for :func:`reg.find_binary`.
        self.binary: Optional[str] = os.fspath(binary) if binary is not None else None

    def __repr__(self) -> str:
        return f"Registry({self.path!r})"

    # ------------------------------------------------------------ running reg

    def _binary(self) -> str:
        if self.binary is not None:
            if os.path.isfile(self.binary) and os.access(self.binary, os.X_OK):
                return self.binary
            raise BinaryNotFoundError(f"{self.binary} is not an executable file; " + INSTALL_HINT)
        return find_binary()

    def _command(self, args: Sequence[str]) -> List[str]:
        cmd = [self._binary()]
        if self.path is not None:
            cmd += ["--registry", self.path]
        return cmd + [os.fspath(a) for a in args]

    def _run(self, args: Sequence[str]) -> "subprocess.CompletedProcess[bytes]":
        cmd = self._command(args)
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        except OSError as e:  # vanished or not runnable between the check and the run
            raise BinaryNotFoundError(f"cannot run {cmd[0]}: {e.strerror or e}; " + INSTALL_HINT) from e
        if proc.returncode != 0:
            stderr = proc.stderr.decode("utf-8", errors="replace")
            raise _error_from(stderr, proc.returncode, args[0] if args else None)
        return proc

    def run(self, *args: str) -> str:
        """Run ``reg ARGS...``; return its stdout as text, or raise RegError."""
        return self._run(args).stdout.decode("utf-8", errors="replace")

    def run_bytes(self, *args: str) -> bytes:
        """Run ``reg ARGS...``; return its stdout as bytes, or raise RegError."""
        return self._run(args).stdout

    def json(self, *args: str) -> Any:
        """Run ``reg ARGS... --json`` and parse what it prints."""
        out = self.run(*args, "--json")
        try:
            return json.loads(out)
        except ValueError as e:
            raise RegError(f"reg {args[0] if args else ''} --json printed something that is not JSON: {e}") from e

    def supports_stdout(self) -> bool:
        """Whether this binary writes ``reg pull REF -o -`` to stdout.

        Binaries before that feature would write a file named ``-``; their
        ``reg pull --help`` mentions neither stdout nor standard output.
        Asked once per binary.
        """
        binary = self._binary()
        with _stdout_lock:
            known = _stdout_support.get(binary)
        if known is None:
            text = self.run("pull", "--help")
            help_text = text.lower()
            known = "stdout" in help_text or "standard output" in help_text
            with _stdout_lock:
                _stdout_support[binary] = known
        return known

    # ------------------------------------------------------------ the API

    def push(
        self,
        path: PathLike,
        name: Optional[str] = None,
        tag: Optional[str] = None,
        message: Optional[str] = None,
        *,
        keep_optimizer_last: Optional[int] = None,
        fast: bool = False,
    ) -> Dict[str, Any]:
        """``reg push PATH``: store a checkpoint file (or a checkpoint
        directory, where the binary supports them) as a new version.

        ``name`` defaults as in reg (``default_name``, else the file stem).
        ``keep_optimizer_last=N`` then drops optimizer state from all but
        the newest N versions of the name, in reg's background job (the
        push does not wait for it; ``reg deltas`` waits). ``fast=True``
        (``reg push --fast``) stores new tensors uncompressed and leaves
        their compression to that job.
        Returns the push report: ``{name, version, id, created, tensors,
        payloads, new_payloads, logical_bytes, new_raw_bytes, ...}``.
        """
        return self.json("push", os.fspath(path), *_push_flags(name, None, tag, message, keep_optimizer_last, fast))

    def save(
        self,
        obj: Any,
        name: Optional[str] = None,
        *,
        source: Optional[str] = None,
        tag: Optional[str] = None,
        message: Optional[str] = None,
        keep_optimizer_last: Optional[int] = None,
        fast: bool = True,
    ) -> Dict[str, Any]:
        """``torch.save(obj, ...)`` straight into the registry: the bytes go
        through a pipe into ``reg push -`` (no file is written first), and
        the version is exactly what ``torch.save`` writes, as if that file
        had been pushed. ``source`` is the file name the version records
        (what ``reg pull`` writes by default; the model name defaults to its
        stem). One of ``name``, ``source`` or the registry's
        ``default_name`` is needed. ``fast`` (the default: a save in the
        training loop) stores new tensors uncompressed and leaves their
        compression to reg's background job (``reg push --fast``); with
        ``fast=False`` the save returns once they are compressed. Returns
        the push report, as :meth:`push`; a refused or failed push raises
        RegError.
        """
        import torch  # only this method needs torch

        return self.push_stream(lambda out: torch.save(obj, out), name, source=source, tag=tag, message=message,
                                keep_optimizer_last=keep_optimizer_last, fast=fast)

    def push_stream(
        self,
        write: Any,
        name: Optional[str] = None,
        *,
        source: Optional[str] = None,
        tag: Optional[str] = None,
        message: Optional[str] = None,
        keep_optimizer_last: Optional[int] = None,
        fast: bool = True,
    ) -> Dict[str, Any]:
        """``reg push -``: call ``write(out)`` with a binary writer whose
        bytes go to reg's standard input (it counts them, so ``tell()``
        works as ``torch.save`` needs), then return the push report.
        ``write`` may write a torch zip (``torch.save``), a legacy torch
        file or safetensors (``safetensors.torch.save``'s bytes). ``fast``
        as in :meth:`save`."""
        args = ["push", "-", "--json", *_push_flags(name, source, tag, message, keep_optimizer_last, fast)]
        with self.piped(*args) as run:
            write(run.writer)
        try:
            return json.loads(run.stdout.decode("utf-8", errors="replace"))
        except ValueError as e:
            raise RegError(f"reg push - --json printed something that is not JSON: {e}") from e

    @contextmanager
    def piped(self, *args: str) -> Iterator["PipedRun"]:
        """Run ``reg ARGS...`` with a pipe into its standard input: the
        body writes to the yielded run's :attr:`PipedRun.writer` (which
        counts what it passed on, so ``tell()`` works as ``torch.save``
        needs); on leaving, the pipe is closed and reg waited for, and
        :attr:`PipedRun.stdout` holds what it printed. reg's failure raises
        RegError with its one-line reason (also when it refused the stream
        before its end and the body's write broke the pipe); the body's
        own error is raised as it is (reg then sees a cut stream and
        stores nothing)."""
        cmd = self._command(args)
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise BinaryNotFoundError(f"cannot run {cmd[0]}: {e.strerror or e}; " + INSTALL_HINT) from e
        # reg's own output is small (a report, maybe a warning) but is read
        # as it comes, so neither side ever waits on a full pipe.
        outputs: Dict[str, bytes] = {}

        def drain(key: str, pipe: Any) -> None:
            outputs[key] = pipe.read()

        readers = [threading.Thread(target=drain, args=(k, p), daemon=True)
                   for k, p in (("out", proc.stdout), ("err", proc.stderr))]
        for t in readers:
            t.start()
        _widen_pipe(proc.stdin)
        run = PipedRun(_CountingWriter(proc.stdin))
        failure: Optional[BaseException] = None
        try:
            yield run
        except BaseException as e:
            # reg refused the stream before its end (the pipe broke: torch
            # reports that as its own error): reg's error says why. Else
            # the body failed: the stream ends where it stopped, and reg
            # refuses a cut checkpoint (nothing stored).
            failure = e
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code = proc.wait()
            for t in readers:
                t.join()
        if code != 0 and (failure is None or run.writer.broken):
            stderr = outputs.get("err", b"").decode("utf-8", errors="replace")
            raise _error_from(stderr, code, args[0] if args else None) from failure
        if failure is not None:
            raise failure
        run.stdout = outputs.get("out", b"")

    def pull(
        self,
        ref: str,
        out: PathLike,
        *,
        force: bool = False,
        format: Optional[str] = None,
        weights_only: bool = False,
    ) -> Dict[str, Any]:
        """``reg pull REF -o OUT``: write a version back, byte for byte and
        verified (``format="safetensors"`` or ``weights_only=True`` write
        those exports instead). ``force`` overwrites an existing OUT.
        Returns ``{name, version, path, bytes}``.
        """
        args = ["pull", ref, "-o", os.fspath(out)]
        if force:
            args.append("--force")
        if format is not None:
            args += ["--format", format]
        if weights_only:
            args.append("--weights-only")
        return self.json(*args)

    def show(self, ref: str) -> Dict[str, Any]:
        """``reg show REF``: one version's identity, metadata and tensors."""
        return self.json("show", ref)

    def log(self, name: str) -> List[Dict[str, Any]]:
        """``reg log NAME``: the versions of a model, oldest first."""
        return self.json("log", name)

    def ls(self) -> List[Dict[str, Any]]:
        """``reg ls``: every model name with its version count."""
        return self.json("ls")

    def diff(self, a: str, b: str, stats: bool = False) -> Dict[str, Any]:
        """``reg diff A B``: what changed between two versions (``stats``:
        max_abs_diff, rel_l2 and changed_fraction of each changed tensor)."""
        args = ["diff", a, b]
        if stats:
            args.append("--stats")
        return self.json(*args)

    def tag(self, ref: str, tag: str, force: bool = True) -> None:
        """Point ``tag`` at ``ref`` (moving it if it exists, unless ``force`` is False)."""
        args = ["tag", ref, tag]
        if force:
            args.append("--force")
        self.run(*args)

    def wait_background(self) -> None:
        """``reg deltas --queued``: wait until the background work pushes
        left (older versions re-encoded as deltas, ``keep_optimizer_last``
        retention) is done."""
        self.run("deltas", "--queued")

    def prune(
        self,
        name: str,
        *,
        keep_last: int = 0,
        keep_best: int = 0,
        keep_tagged: bool = False,
        keep_optimizer_last: Optional[int] = None,
        dry_run: bool = False,
    ) -> Dict[str, Any]:
        """``reg prune NAME``: remove versions no rule keeps, or (with only
        ``keep_optimizer_last``) drop optimizer state from older versions."""
        args = ["prune", name]
        if keep_last:
            args += ["--keep-last", str(keep_last)]
        if keep_best:
            args += ["--keep-best", str(keep_best)]
        if keep_tagged:
            args.append("--keep-tagged")
        if keep_optimizer_last is not None:
            args += ["--keep-optimizer-last", str(keep_optimizer_last)]
        if dry_run:
            args.append("--dry-run")
        return self.json(*args)


def _push_flags(name: Optional[str], source: Optional[str], tag: Optional[str], message: Optional[str],
                keep_optimizer_last: Optional[int], fast: bool = False) -> List[str]:
    """The ``reg push`` flags of the options given (None: not passed)."""
    flags: List[str] = ["--fast"] if fast else []
    for flag, value in (("--name", name), ("--source", source), ("--tag", tag), ("-m", message),
                        ("--keep-optimizer-last", keep_optimizer_last)):
        if value is not None:
            flags += [flag, str(value)]
    return flags


def _widen_pipe(pipe: Any) -> None:
    """Give the pipe into reg a 1 MiB buffer (Linux; 64 KiB otherwise):
    fewer switches between the writer and reg. Best effort."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError, AttributeError):
        pass


class PipedRun:
    """A ``reg`` process fed through a pipe (:meth:`Registry.piped`)."""

    def __init__(self, writer: "_CountingWriter"):
        #: The stream into reg's standard input.
        self.writer = writer
        #: What reg printed, once it ended.
        self.stdout = b""


class _CountingWriter(io.RawIOBase):
    """A write-only stream over a pipe that counts what it passed on:
    ``torch.save`` asks ``tell()``, which a bare pipe cannot answer."""

    def __init__(self, pipe: Any):
        super().__init__()
        self._pipe = pipe
        self._written = 0
        #: reg closed its end: it refused the stream.
        self.broken = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        try:
            self._pipe.write(view)
        except BrokenPipeError:
            self.broken = True
            raise
        self._written += len(view)
        return len(view)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        if not self._pipe.closed:
            self._pipe.flush()


def default_registry() -> Registry:
    """The registry the module-level functions use: ``$REG_REGISTRY`` if
    set, else whatever reg finds."""
    return Registry(os.environ.get("REG_REGISTRY") or None)

"""Run the ``reg`` binary and turn its answers into Python values."""

import json
import os
import shutil
import subprocess
from typing import Any, List, Optional, Sequence


class RegError(RuntimeError):
    """``reg`` failed; the message is reg's own one-line error."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class RegNotFoundError(RegError):
    """The ``reg`` binary is not installed or not on PATH."""


INSTALL_HINT = (
    "the reg binary was not found: install it with `cargo install --path crates/reg-cli` "
    "from the reg repository (or put it on PATH), or set REG_BIN to its path"
)


def find_binary() -> str:
    """The reg binary: ``$REG_BIN``, else ``reg`` on PATH."""
    explicit = os.environ.get("REG_BIN")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise RegNotFoundError(f"REG_BIN={explicit} is not an executable file; " + INSTALL_HINT)
    found = shutil.which("reg")
    if not found:
        raise RegNotFoundError(INSTALL_HINT)
    return found


class RegClient:
    """A registry, reached through the reg binary.

    ``registry`` is a registry directory (``--registry``); ``None`` lets reg
    find it (REG_HOME, registry.toml, the user data dir).
    """

    def __init__(self, registry: Optional[str] = None, binary: Optional[str] = None):
        self.registry = os.fspath(registry) if registry is not None else None
        self.binary = binary

    def _cmd(self, args: Sequence[str]) -> List[str]:
        binary = self.binary or find_binary()
        cmd = [binary]
        if self.registry is not None:
            cmd += ["--registry", self.registry]
        return cmd + list(args)

    def run(self, *args: str) -> str:
        """Run reg; return stdout, or raise RegError with reg's message."""
        try:
            proc = subprocess.run(self._cmd(args), capture_output=True, text=True)
        except FileNotFoundError as e:
            raise RegNotFoundError(INSTALL_HINT) from e
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.startswith("reg: error:")]
            message = lines[-1][len("reg: error: "):] if lines else proc.stderr.strip() or f"reg exited {proc.returncode}"
            raise RegError(message, proc.returncode)
        return proc.stdout

    def json(self, *args: str) -> Any:
        """Run reg with --json and parse its output."""
        return json.loads(self.run(*args, "--json"))

    def push(self, path: str, name: str, tag: Optional[str] = None, message: Optional[str] = None) -> dict:
        """Push a checkpoint file; returns reg's push report."""
        args = ["push", os.fspath(path), "--name", name]
        if tag:
            args += ["--tag", tag]
        if message:
            args += ["-m", message]
        return self.json(*args)

    def pull(self, ref: str, out: str) -> dict:
        """Pull NAME@REF to ``out`` (overwriting it)."""
        return self.json("pull", ref, "-o", os.fspath(out), "--force")

    def show(self, ref: str) -> dict:
        """reg show --json."""
        return self.json("show", ref)

    def log(self, name: str) -> list:
        """reg log --json (oldest first)."""
        return self.json("log", name)

    def tag(self, ref: str, tag: str) -> None:
        """Point ``tag`` at ``ref`` (moving it if it exists)."""
        self.run("tag", ref, tag, "--force")

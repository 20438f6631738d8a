"""An fsspec filesystem for ``reg://NAME@REF``: opening one pulls the
version into a local cache and reads it from there (read-only).

Lightning opens checkpoints through fsspec, so registering this protocol
makes ``reg://`` paths work in ``trainer.fit(ckpt_path=...)`` and
``Model.load_from_checkpoint(...)`` without patching Lightning.
"""

import hashlib
import os
import tempfile
from typing import Optional

from .client import RegClient

try:
    import fsspec
    from fsspec.implementations.local import LocalFileOpener
    from fsspec.spec import AbstractFileSystem
except ImportError:  # pragma: no cover - fsspec comes with lightning
    fsspec = None
    AbstractFileSystem = object


def parse(url: str) -> str:
    """``reg://mnist@best`` -> ``mnist@best``."""
    ref = str(url)
    if ref.startswith("reg://"):
        ref = ref[len("reg://"):]
    return ref.rstrip("/")


def cache_dir() -> str:
    """Where pulled versions are cached (``$REG_LIGHTNING_CACHE``)."""
    d = os.environ.get("REG_LIGHTNING_CACHE") or os.path.join(tempfile.gettempdir(), "reg-lightning-cache")
    os.makedirs(d, exist_ok=True)
    return d


def fetch(url: str, client: Optional[RegClient] = None) -> str:
    """Pull ``reg://NAME@REF`` into the cache; return the local path.

    The version is resolved first (refs like ``latest`` or ``best`` move),
    and the cache is keyed by the version id, so a cached file is reused
    only when it is that exact version.
    """
    client = client or RegClient(os.environ.get("REG_REGISTRY") or None)
    ref = parse(url)
    info = client.show(ref)
    name = f"{info['name']}-v{info['version']}-{info['id'][:16]}.ckpt"
    path = os.path.join(cache_dir(), name)
    if not os.path.exists(path) or not _same(path, info):
        client.pull(f"{info['name']}@{info['id'][:16]}", path)
    return path


def _same(path: str, info: dict) -> bool:
    return os.path.getsize(path) == info.get("size")


class RegFileSystem(AbstractFileSystem):
    """Read-only fsspec filesystem over reg versions."""

    protocol = "reg"
    root_marker = ""

    @classmethod
    def _strip_protocol(cls, path):
        return parse(path)

    def _local(self, path):
        return fetch(path)

    def info(self, path, **kwargs):
        local = self._local(path)
        return {"name": parse(path), "size": os.path.getsize(local), "type": "file"}

    def exists(self, path, **kwargs):
        try:
            RegClient(os.environ.get("REG_REGISTRY") or None).show(parse(path))
            return True
        except Exception:
            return False

    def isfile(self, path):
        return self.exists(path)

    def isdir(self, path):
        return False

    def ls(self, path, detail=True, **kwargs):
        entry = self.info(path)
        return [entry] if detail else [entry["name"]]

    def _open(self, path, mode="rb", **kwargs):
        if "r" not in mode or "+" in mode:
            raise PermissionError("reg:// paths are read-only; push files with `reg push`")
        return LocalFileOpener(self._local(path), mode)


def register() -> None:
    """Register the ``reg`` protocol with fsspec (idempotent)."""
    if fsspec is None:
        return
    try:
        fsspec.register_implementation("reg", RegFileSystem, clobber=True)
    except TypeError:  # older fsspec without clobber
        fsspec.register_implementation("reg", RegFileSystem)

"""An fsspec filesystem for ``reg://NAME@REF`` (read-only): opening one
pulls the version into the per-user cache (:mod:`reg.cache`) and reads it
from there.

Lightning opens checkpoints through fsspec, so registering this protocol
makes ``reg://`` paths work in ``trainer.fit(ckpt_path=...)`` and
``Model.load_from_checkpoint(...)`` without patching Lightning. The
registry is ``$REG_REGISTRY`` (else what reg finds), or the ``registry``
storage option: ``fsspec.filesystem("reg", registry="/path")``.
"""

import os
from typing import Any, Dict, Optional

from . import cache
from .errors import VersionNotFoundError
from .registry import Registry

try:
    import fsspec
    from fsspec.implementations.local import LocalFileOpener
    from fsspec.spec import AbstractFileSystem
except ImportError:  # pragma: no cover - fsspec is a dependency
    fsspec = None
    AbstractFileSystem = object


def parse(url: str) -> str:
    """``reg://mnist@best`` -> ``mnist@best``."""
    ref = str(url)
    if ref.startswith("reg://"):
        ref = ref[len("reg://"):]
    return ref.rstrip("/")


def fetch(url: str, registry: Optional[Registry] = None) -> str:
    """Pull ``reg://NAME@REF`` (or ``NAME@REF``) into the cache; return the
    local path: a verified file, or a folder for a directory version.

    The ref is resolved first (``latest`` and ``best`` move) and the cache
    is keyed by version id, so a cached file is only ever that version."""
    return cache.fetch(parse(url), registry)


class RegFileSystem(AbstractFileSystem):
    """Read-only fsspec filesystem over reg versions."""

    protocol = "reg"
    root_marker = ""
    # Not cached by fsspec: the registry comes from $REG_REGISTRY at
    # construction, and a test or a script may change it between opens.
    cachable = False

    def __init__(self, registry: Optional[str] = None, binary: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.registry = Registry(registry or os.environ.get("REG_REGISTRY") or None, binary=binary)

    @classmethod
    def _strip_protocol(cls, path):
        return parse(path)

    def _show(self, path: str) -> Dict[str, Any]:
        return self.registry.show(parse(path))

    def info(self, path, **kwargs):
        shown = self._show(path)
        kind = "directory" if cache.is_directory(shown) else "file"
        return {"name": parse(path), "size": shown.get("size"), "type": kind, "id": shown.get("id")}

    def exists(self, path, **kwargs):
        """True when the ref names a version; False only for reg's "no such
        name/version" error. Anything else (no binary, a damaged registry,
        a bad ref) raises."""
        try:
            self._show(path)
            return True
        except VersionNotFoundError:
            return False

    def isfile(self, path):
        return self.exists(path) and not cache.is_directory(self._show(path))

    def isdir(self, path):
        try:
            return cache.is_directory(self._show(path))
        except VersionNotFoundError:
            return False

    def modified(self, path):
        """When the version was pushed (Lightning's ``ckpt_path="last"``
        picks the newest candidate by this)."""
        import datetime

        created = self._show(path).get("created")
        if created is None:
            raise FileNotFoundError(path)
        return datetime.datetime.fromtimestamp(int(created), tz=datetime.timezone.utc)

    def ls(self, path, detail=True, **kwargs):
        entry = self.info(path)
        return [entry] if detail else [entry["name"]]

    def local_path(self, path: str) -> str:
        """The cached local file or folder of ``reg://NAME@REF``."""
        return cache.fetch(parse(path), self.registry)

    def _open(self, path, mode="rb", **kwargs):
        if "r" not in mode or "+" in mode:
            raise PermissionError("reg:// paths are read-only; push files with `reg push`")
        local = self.local_path(path)
        if os.path.isdir(local):
            raise IsADirectoryError(
                f"reg://{parse(path)} is a directory version (folder {local}); "
                "resume with RegistryCallback or reg.pull_dir"
            )
        return LocalFileOpener(local, mode)


def register() -> None:
    """Register the ``reg`` protocol with fsspec (idempotent)."""
    if fsspec is None:
        return
    try:
        fsspec.register_implementation("reg", RegFileSystem, clobber=True)
    except TypeError:  # older fsspec without clobber
        fsspec.register_implementation("reg", RegFileSystem)

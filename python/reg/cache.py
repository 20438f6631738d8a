"""A per-user cache of pulled versions, for the code that needs a local path
(``reg://`` in Lightning, resuming a Trainer from a directory).

Where: ``$REG_LIGHTNING_CACHE`` if set, else ``$XDG_CACHE_HOME/reg``, else
``~/.cache/reg``. The folder is created 0700 and refused (with a
:class:`CacheError` that says what to do) unless it is a directory owned by
this user that nobody else can read or write: a cache that other users can
plant files in would let them choose what training loads.

What: a file version is ``<version id>.file``, reused only when its blake3
equals the version's whole-file blake3 (``reg show --json`` field
``blake3``); a file that does not match is pulled again. A directory version
is ``<version id>.dir/``, pulled fresh on every fetch (reg verifies every
file as it writes it; ``reg show`` has no per-file hash to check a cached
tree against).
"""

import os
import re
import shutil
import stat
import tempfile
from typing import Any, Dict, Optional

from .errors import RegError
from .registry import Registry, default_registry

_VERSION_ID = re.compile(r"[0-9a-f]{64}")


class CacheError(RegError):
    """The cache folder is not private to this user (or not a folder)."""


def cache_dir() -> str:
    """The cache folder, created 0700 if missing and checked every call."""
    explicit = os.environ.get("REG_LIGHTNING_CACHE")
    if explicit:
        path = os.path.abspath(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME")
        # The XDG spec: a relative value is invalid and must be ignored.
        if not base or not os.path.isabs(base):
            base = os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "reg")
    ensure_private_dir(path)
    return path


def ensure_private_dir(path: str) -> None:
    """Make ``path`` a 0700 folder, or check that it is one this user owns
    and nobody else can use; raise :class:`CacheError` otherwise."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # the umask may have taken bits the owner needs
    except FileExistsError:
        pass
    if not hasattr(os, "geteuid"):  # pragma: no cover - Windows: ACLs, not modes
        if not os.path.isdir(path):
            raise CacheError(f"cache {path} is not a directory")
        return
    uid = os.geteuid()
    link = os.lstat(path)
    if stat.S_ISLNK(link.st_mode) and link.st_uid != uid:
        raise CacheError(f"cache {path} is a symlink owned by uid {link.st_uid}, not you (uid {uid}); remove it")
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"cache {path} is not a directory; remove it or set REG_LIGHTNING_CACHE")
    if st.st_uid != uid:
        raise CacheError(
            f"cache {path} is owned by uid {st.st_uid}, not you (uid {uid}); "
            "another user could plant checkpoints there: set REG_LIGHTNING_CACHE to a folder of your own"
        )
    if st.st_mode & 0o077:
        raise CacheError(
            f"cache {path} has mode {stat.S_IMODE(st.st_mode):04o}: other users could plant checkpoints there; "
            f"run `chmod 700 {path}`"
        )


def version_id(info: Dict[str, Any]) -> str:
    """The full version id of a ``reg show --json`` answer, checked."""
    vid = info.get("id")
    if not isinstance(vid, str) or not _VERSION_ID.fullmatch(vid):
        raise RegError(f"reg show gave a malformed version id {vid!r}", 2)
    return vid


def file_blake3(path: str) -> Optional[str]:
    """blake3 of a file's bytes (hex), hashed with every core; None when the
    ``blake3`` package (a dependency of the wheel) is missing, as in a
    source checkout used without installing: then nothing cached can be
    checked, and every fetch pulls again."""
    try:
        import blake3
    except ImportError:
        return None

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if hasattr(hasher, "update_mmap"):
        hasher.update_mmap(path)
    else:  # pragma: no cover - blake3 < 0.4
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                hasher.update(chunk)
    return hasher.hexdigest()


def _is_plain_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def is_directory(info: Dict[str, Any]) -> bool:
    """Whether a ``reg show --json`` answer is a directory version."""
    return info.get("kind") == "directory"


def fetch(ref: str, registry: Optional[Registry] = None, info: Optional[Dict[str, Any]] = None) -> str:
    """A local path holding version ``ref`` (a file, or a folder for a
    directory version), pulled into the cache unless a verified copy is
    there. ``info`` is ``registry.show(ref)`` when the caller has it."""
    registry = registry or default_registry()
    info = info if info is not None else registry.show(ref)
    if is_directory(info):
        return fetch_dir(ref, registry, info)
    vid = version_id(info)
    expected = info.get("blake3")
    if not isinstance(expected, str):
        raise RegError(f"reg show {ref} gave no blake3 for the version", 2)
    path = os.path.join(cache_dir(), vid + ".file")
    if _is_plain_file(path) and file_blake3(path) == expected:
        return path
    _remove(path)
    # reg pull writes a temp file beside the output and renames it once
    # the whole-file hash matched: the cached name never holds a partial file.
    registry.pull(f"{info['name']}@{vid}", path, force=True)
    pulled = file_blake3(path)
    if pulled is not None and pulled != expected:
        _remove(path)
        raise RegError(f"{info['name']}@v{info['version']}: pulled bytes do not match the version's blake3", 2)
    return path


def fetch_dir(ref: str, registry: Optional[Registry] = None, info: Optional[Dict[str, Any]] = None) -> str:
    """A folder holding directory version ``ref``, pulled fresh into the cache."""
    registry = registry or default_registry()
    info = info if info is not None else registry.show(ref)
    vid = version_id(info)
    root = cache_dir()
    final = os.path.join(root, vid + ".dir")
    work = tempfile.mkdtemp(prefix=vid[:16] + ".pull-", dir=root)
    try:
        tree = os.path.join(work, "tree")
        registry.pull(f"{info['name']}@{vid}", tree, force=True)
        if not os.path.isdir(tree):
            raise RegError(f"{info['name']}@v{info['version']} is not a directory version")
        old = os.path.join(work, "old")
        if os.path.lexists(final):
            os.rename(final, old)
        os.rename(tree, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def pull_dir(ref: str, out: Optional[str] = None, *, registry: Optional[Registry] = None) -> str:
    """Write directory version ``ref`` (a Trainer ``checkpoint-N``, a DCP or
    sharded checkpoint) to a folder and return its path: ``out`` if given
    (replaced if it exists), else a folder in the per-user cache. Resume
    with ``trainer.train(resume_from_checkpoint=reg.pull_dir("run@step=8"))``.
    """
    registry = registry or default_registry()
    if out is None:
        return fetch_dir(ref, registry)
    out = os.path.abspath(out)
    registry.pull(ref, out, force=True)
    return out

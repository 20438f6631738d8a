"""Load a version's tensors straight into Python: the bytes come from the
binary's stdout into memory, never through a checkpoint file on disk."""

import io
import os
import shutil
import struct
import tempfile
import warnings
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union

from .errors import RegError
from .registry import Registry, default_registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

MapLocation = Union[None, str, "torch.device"]

#: ``export`` values of :func:`pull_bytes`.
EXPORTS = (None, "safetensors", "weights-only")


def _glob_escape(key: str) -> str:
    """A state-dict key as a glob matching only itself (reg's ``--tensors``)."""
    return "".join("\\" + c if c in "*?[]{}\\" else c for c in key)


def _tensor_args(keys: Optional[Sequence[str]]) -> List[str]:
    """``--tensors`` arguments for ``keys`` (globs are passed as they are)."""
    if keys is None:
        return []
    if isinstance(keys, str):
        raise TypeError("keys takes a list of state-dict keys or globs, not one string")
    if not keys:
        raise ValueError("keys is empty: pass None for every tensor")
    args: List[str] = []
    for k in keys:
        args += ["--tensors", k]
    return args


def pull_bytes(ref: str, *, export: Optional[str] = None, registry: Optional[Registry] = None,
               keys: Optional[Sequence[str]] = None) -> bytes:
    """The bytes of version ``ref``: the original file (``export=None``),
    reg's safetensors export of its state dict (``"safetensors"``; for a
    directory version, the consolidated weights), or its weights-only torch
    checkpoint (``"weights-only"``).

    Read from ``reg pull REF -o -`` (stdout) into memory. A binary without
    stdout output (older than that feature) pulls into a private 0700 temp
    folder instead, read and deleted here.
    """
    if export not in EXPORTS:
        raise ValueError(f"export must be one of {EXPORTS}, not {export!r}")
    registry = registry or default_registry()
    if keys is not None and export != "safetensors":
        raise ValueError("keys chooses tensors of the safetensors export only (export='safetensors')")
    args = ["pull", ref, "--quiet"]
    if export == "safetensors":
        args += ["--format", "safetensors", *_tensor_args(keys)]
    elif export == "weights-only":
        args.append("--weights-only")
    if registry.supports_stdout():
        return registry.run_bytes(*args, "-o", "-")
    work = tempfile.mkdtemp(prefix="reg-pull-")  # mkdtemp: mode 0700
    try:
        out = os.path.join(work, "version")
        registry.run(*args, "-o", out)
        if os.path.isdir(out):
            raise RegError(
                f"{ref} is a directory version: load its weights with load_state_dict, "
                "or write the folder with reg.pull_dir"
            )
        with open(out, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    (header_len,) = struct.unpack("<Q", data[:8])
    return 2 <= header_len <= len(data) - 8 and data[8:9] == b"{"


def _to_device(tensors: Dict[str, "torch.Tensor"], map_location: MapLocation) -> Dict[str, "torch.Tensor"]:
    import torch

    if map_location is None:
        return tensors
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(
            "load_state_dict(weights_only=True) takes map_location as a device (str or torch.device), "
            f"not {type(map_location).__name__}"
        )
    device = torch.device(map_location)
    if device.type == "cpu":
        return tensors
    return {k: v.to(device) for k, v in tensors.items()}


def load_state_dict(
    ref: str,
    *,
    map_location: MapLocation = "cpu",
    weights_only: bool = True,
    registry: Optional[Registry] = None,
    keys: Optional[Sequence[str]] = None,
) -> Dict[str, "torch.Tensor"]:
    """The model state dict of version ``ref`` as torch tensors.

    ``keys``: only these state-dict keys or globs (``"encoder.*"``; ``*``
    matches any characters); reg reads and decodes only their blobs. A key
    or glob that matches nothing raises RegError naming it.

    With ``weights_only=True`` (the default) no pickle is read in Python:
    reg exports the state dict as safetensors (Lightning checkpoints:
    ``state_dict``; plain state-dict files: every tensor; directory
    versions: the consolidated weights, sharded chunks assembled) into a
    private file in shared memory (``/dev/shm``, unlinked at once) that
    ``safetensors.torch.load_file`` maps; where there is none (or no room
    in it) to stdout, for ``safetensors.torch.load``. Tensors stored raw
    (a fast save's until reg's job compresses them; with
    ``keep_newest_raw``, the newest version's) are not exported but
    mapped from their blob files copy-on-write (``reg locate``). Tensors
    are contiguous (tied weights are separate tensors with equal values).

    With ``weights_only=False`` the original file is loaded with
    ``torch.load(weights_only=False)`` (which runs the pickle: trusted
    files only) and its ``state_dict`` returned, views and ties intact.

    ``map_location``: a device (``"cpu"``, ``"cuda:0"``, a torch.device) to
    put the tensors on; with ``weights_only=False`` anything torch.load takes.
    """
    registry = registry or default_registry()
    if keys is not None and not weights_only:
        raise ValueError("keys needs weights_only=True (a pickle is loaded whole)")
    if not weights_only:
        obj = load_checkpoint(ref, map_location=map_location, weights_only=False, registry=registry)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            return obj["state_dict"]
        if isinstance(obj, dict):
            return obj
        raise RegError(f"{ref} holds a {type(obj).__name__}, not a dict with a state dict")
    return _to_device(_load_mapped(ref, registry, keys), map_location)


#: Where reg writes an export for :func:`load_state_dict` to map (a tmpfs:
#: the file is memory, not disk); none where it does not exist.
SHARED_MEMORY = "/dev/shm"


def _escape_glob(name: str) -> str:
    """``name`` as a glob matching only itself (reg's globs: ``*`` and ``\\``)."""
    return name.replace("\\", "\\\\").replace("*", "\\*")


#: A reg blob file starts with this magic; its sixth byte is the codec
#: (0: raw), docs/format.md.
_BLOB_MAGIC = b"REGB"
_RAW_CODEC_AT = 5


def _load_mapped(ref: str, registry: Registry,
                 keys: Optional[Sequence[str]]) -> Dict[str, "torch.Tensor"]:
    """The state dict of ``ref``, each tensor stored raw in the registry
    mapped from its blob file as it is (``reg locate``: a fast save's
    tensors until reg's job compresses them, the newest version with
    ``keep_newest_raw``), copy-on-write, like ``safetensors.torch.load_file``
    maps its file; the others exported through shared memory. A blob file
    that is not what reg located (compressed or removed meanwhile) sends
    its tensors to the export too."""
    import json
    import mmap

    import torch

    located = json.loads(registry.run("locate", ref, *_tensor_args(keys), "--json"))
    out: Dict[str, "torch.Tensor"] = {}
    exported: List[str] = list(located["exported"])
    maps: Dict[str, Optional[mmap.mmap]] = {}
    seen: set = set()
    for t in located["mapped"]:
        path = t["file"]
        if path not in maps:
            maps[path] = None
            try:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_size == t["file_len"]:
                        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
                        if mm[:len(_BLOB_MAGIC)] == _BLOB_MAGIC and mm[_RAW_CODEC_AT] == 0:
                            maps[path] = mm
            except OSError:
                pass
        mm = maps[path]
        dtype = getattr(torch, t["dtype"], None)
        if mm is None or not isinstance(dtype, torch.dtype):
            exported.append(t["name"])
            continue
        numel = 1
        for n in t["shape"]:
            numel *= n
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the map is copy-on-write: writable
            tensor = torch.frombuffer(mm, dtype=dtype, count=numel, offset=t["offset"]).view(t["shape"])
        # Tied weights come back as separate tensors, as from an export.
        span = (path, t["offset"])
        out[t["name"]] = tensor.clone() if span in seen else tensor
        seen.add(span)
    if exported:
        rest = _load_via_shared_memory(ref, registry, [_escape_glob(n) for n in exported])
        if rest is None:
            from safetensors.torch import load as safetensors_load

            rest = safetensors_load(pull_bytes(ref, export="safetensors", registry=registry,
                                               keys=[_escape_glob(n) for n in exported]))
        out.update(rest)
    return out


def _load_via_shared_memory(ref: str, registry: Registry,
                            keys: Optional[Sequence[str]]) -> Optional[Dict[str, "torch.Tensor"]]:
    """The state dict of ``ref`` exported by reg into a private file in
    shared memory and mapped by ``safetensors.torch.load_file`` (no copy
    through a pipe, none into Python bytes): the file is unlinked at once,
    its pages live as long as the tensors that view them. ``None`` where
    there is no usable shared memory (no /dev/shm, not enough room in it),
    and the caller reads the export from reg's stdout instead; any other
    failure is reg's error."""
    if not os.path.isdir(SHARED_MEMORY) or not os.access(SHARED_MEMORY, os.W_OK):
        return None
    from safetensors.torch import load_file

    work = tempfile.mkdtemp(prefix="reg-load-", dir=SHARED_MEMORY)  # mode 0700
    try:
        out = os.path.join(work, "weights.safetensors")
        try:
            registry.run("pull", ref, "--quiet", "--format", "safetensors", *_tensor_args(keys), "-o", out)
        except RegError as e:
            if "no space left" in str(e).lower():
                return None
            raise
        return load_file(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


class LazyVersion:
    """A version's state dict opened lazily, like safetensors' ``safe_open``:
    :meth:`keys` and :meth:`metadata` come from the export's header (no
    tensor read), :meth:`get_tensor` reads and decodes only that tensor's
    blobs. Made by :func:`reg.open`; use it as a context manager or a mapping
    (``len``, ``in``, iteration, ``lazy[key]``).
    """

    def __init__(self, ref: str, registry: Registry, map_location: MapLocation = "cpu"):
        self.ref = ref
        self.registry = registry
        self.map_location = map_location
        header = self._header()
        self._metadata: Dict[str, str] = header.pop("__metadata__", {}) or {}
        self._info: Dict[str, Dict[str, Any]] = header

    def _header(self) -> Dict[str, Any]:
        import json

        data = self.registry.run_bytes("pull", self.ref, "--quiet", "--format", "safetensors", "--header-only",
                                       "-o", "-")
        if len(data) < 8:
            raise RegError(f"reg pull {self.ref} --header-only wrote {len(data)} bytes, not a safetensors header")
        (n,) = struct.unpack("<Q", data[:8])
        return json.loads(data[8:8 + n])

    def keys(self) -> List[str]:
        """Every tensor name, in the export's order."""
        return list(self._info)

    def metadata(self) -> Dict[str, str]:
        """The export's ``__metadata__`` (epoch, global step, hyperparameters)."""
        return dict(self._metadata)

    def get_slice_info(self, key: str) -> Dict[str, Any]:
        """``{dtype, shape}`` of one tensor, from the header alone."""
        info = self._info.get(key)
        if info is None:
            raise KeyError(key)
        return {"dtype": info["dtype"], "shape": list(info["shape"])}

    def get_tensor(self, key: str) -> "torch.Tensor":
        """One tensor, read and decoded on its own."""
        if key not in self._info:
            raise KeyError(key)
        return self.get_tensors([key])[key]

    def get_tensors(self, keys: Sequence[str]) -> Dict[str, "torch.Tensor"]:
        """Several tensors in one read (one reg process)."""
        from safetensors.torch import load as safetensors_load

        missing = [k for k in keys if k not in self._info]
        if missing:
            raise KeyError(missing[0])
        data = self.registry.run_bytes("pull", self.ref, "--quiet", "--format", "safetensors",
                                       *_tensor_args([_glob_escape(k) for k in keys]), "-o", "-")
        return _to_device(safetensors_load(data), self.map_location)

    def __getitem__(self, key: str) -> "torch.Tensor":
        return self.get_tensor(key)

    def __contains__(self, key: object) -> bool:
        return key in self._info

    def __iter__(self) -> Iterator[str]:
        return iter(self._info)

    def __len__(self) -> int:
        return len(self._info)

    def __enter__(self) -> "LazyVersion":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"<reg.open {self.ref!r}: {len(self._info)} tensors>"


def open_version(ref: str, *, map_location: MapLocation = "cpu", registry: Optional[Registry] = None) -> LazyVersion:
    """Open version ``ref``'s state dict lazily (see :class:`LazyVersion`)::

        with reg.open("run@best") as f:
            print(f.keys())
            w = f.get_tensor("encoder.weight")   # only that tensor is read
    """
    return LazyVersion(ref, registry or default_registry(), map_location)


def load_checkpoint(
    ref: str,
    *,
    map_location: Any = "cpu",
    weights_only: bool = True,
    registry: Optional[Registry] = None,
) -> Any:
    """The whole checkpoint of version ``ref`` (optimizer state, epoch,
    callbacks ... everything the file holds), as
    ``torch.load(file, map_location=..., weights_only=True)`` gives it, from
    the original bytes held in memory. A safetensors version gives its
    tensors. ``weights_only=False`` lets the pickle import what it names
    (trusted files only). Directory versions have no single file: use
    :func:`reg.pull_dir` or :func:`load_state_dict`.
    """
    import torch

    data = pull_bytes(ref, registry=registry)
    if _is_safetensors(data):
        from safetensors.torch import load as safetensors_load

        return _to_device(safetensors_load(data), map_location)
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=weights_only)

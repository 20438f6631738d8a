"""Load a version's tensors straight into Python: the bytes come from the
binary's stdout into memory, never through a checkpoint file on disk."""

import io
import os
import shutil
import struct
import tempfile
from typing import TYPE_CHECKING, Any, Dict, Optional, Union

from .errors import RegError
from .registry import Registry, default_registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

MapLocation = Union[None, str, "torch.device"]

#: ``export`` values of :func:`pull_bytes`.
EXPORTS = (None, "safetensors", "weights-only")


def pull_bytes(ref: str, *, export: Optional[str] = None, registry: Optional[Registry] = None) -> bytes:
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
    args = ["pull", ref, "--quiet"]
    if export == "safetensors":
        args += ["--format", "safetensors"]
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
) -> Dict[str, "torch.Tensor"]:
    """The model state dict of version ``ref`` as torch tensors.

    With ``weights_only=True`` (the default) no pickle is read in Python:
    reg exports the state dict as safetensors to stdout (Lightning
    checkpoints: ``state_dict``; plain state-dict files: every tensor;
    directory versions: the consolidated weights, sharded chunks assembled)
    and ``safetensors.torch.load`` turns it into tensors. Tensors are
    contiguous copies (tied weights are separate tensors with equal values).

    With ``weights_only=False`` the original file is loaded with
    ``torch.load(weights_only=False)`` (which runs the pickle: trusted
    files only) and its ``state_dict`` returned, views and ties intact.

    ``map_location``: a device (``"cpu"``, ``"cuda:0"``, a torch.device) to
    put the tensors on; with ``weights_only=False`` anything torch.load takes.
    """
    registry = registry or default_registry()
    if not weights_only:
        obj = load_checkpoint(ref, map_location=map_location, weights_only=False, registry=registry)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            return obj["state_dict"]
        if isinstance(obj, dict):
            return obj
        raise RegError(f"{ref} holds a {type(obj).__name__}, not a dict with a state dict")
    from safetensors.torch import load as safetensors_load

    tensors = safetensors_load(pull_bytes(ref, export="safetensors", registry=registry))
    return _to_device(tensors, map_location)


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

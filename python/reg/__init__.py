"""reg, a checkpoint registry, from Python.

The wheel carries the ``reg`` binary; this package drives it through its
``--json`` output and reads tensors from its stdout.

- :class:`Registry`: ``push``, ``pull``, ``log``, ``show``, ``diff`` ... each
  returning what the CLI's ``--json`` prints; failures raise
  :class:`RegError` (reg's one-line message, ``.code`` its exit code).
- :func:`load_state_dict`: a version's model weights as torch tensors, from
  reg's safetensors export streamed into memory (no file written).
- :func:`open`: a version's state dict opened lazily (``keys()``,
  ``get_tensor(key)``, ``metadata()``), reading only the tensors asked for.
- :func:`load_checkpoint`: the whole checkpoint, ``torch.load(...,
  weights_only=True)`` of the original bytes held in memory.
- :func:`pull_dir`: a directory version (Trainer ``checkpoint-N``, DCP
  shards) as a local folder, for ``trainer.train(resume_from_checkpoint=...)``.
- :class:`RegTrainerCallback` (transformers) and :mod:`reg.lightning`
  (Lightning: ``RegCheckpointIO``, ``RegistryCallback``, ``reg://`` paths).

Example::

    import reg
    r = reg.Registry()                       # the registry reg finds
    r.push("epoch=3.ckpt", name="mnist")
    weights = reg.load_state_dict("mnist@best")
    model.load_state_dict(weights)
"""

from typing import Any

from ._binary import bundled_binary, find_binary
from .cache import CacheError, cache_dir, pull_dir
from .errors import BinaryNotFoundError, RegError, VersionNotFoundError
from .load import LazyVersion, load_checkpoint, load_state_dict, pull_bytes
from .load import open_version as open
from .registry import Registry

__all__ = [
    "Registry",
    "RegError",
    "VersionNotFoundError",
    "BinaryNotFoundError",
    "CacheError",
    "load_state_dict",
    "load_checkpoint",
    "pull_bytes",
    "open",
    "LazyVersion",
    "pull_dir",
    "cache_dir",
    "find_binary",
    "bundled_binary",
    "RegTrainerCallback",
]


def __getattr__(name: str) -> Any:
    # transformers is imported only by those who use the callback.
    if name == "RegTrainerCallback":
        from .trainer import RegTrainerCallback

        return RegTrainerCallback
    raise AttributeError(f"module 'reg' has no attribute {name!r}")

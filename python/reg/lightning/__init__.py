"""Lightning integration for reg.

- :class:`RegCheckpointIO`: a ``CheckpointIO`` plugin that pushes every
  checkpoint file it saves and loads ``reg://NAME@REF`` paths; wrap it in
  Lightning's ``AsyncCheckpointIO`` to push in the background.
- :class:`RegistryCallback`: works with any strategy and any CheckpointIO:
  pushes each checkpoint file or folder (sharded strategies save folders)
  and resolves ``reg://NAME@REF`` in ``ckpt_path`` to a file or a folder.
- ``reg://NAME@REF`` works anywhere Lightning opens a checkpoint: importing
  this package registers the fsspec filesystem :class:`reg.fs.RegFileSystem`.
"""

from typing import Any

from ..errors import BinaryNotFoundError, RegError, VersionNotFoundError
from ..fs import RegFileSystem, fetch, register
from ..registry import Registry

__all__ = [
    "Registry",
    "RegError",
    "VersionNotFoundError",
    "BinaryNotFoundError",
    "RegFileSystem",
    "fetch",
    "RegCheckpointIO",
    "RegistryCallback",
]

register()


def __getattr__(name: str) -> Any:
    # Lightning is imported lazily so `import reg.lightning` stays cheap and
    # works where only the fsspec part is needed.
    if name == "RegCheckpointIO":
        from .checkpoint_io import RegCheckpointIO

        return RegCheckpointIO
    if name == "RegistryCallback":
        from .callback import RegistryCallback

        return RegistryCallback
    raise AttributeError(f"module 'reg.lightning' has no attribute {name!r}")

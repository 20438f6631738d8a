"""Lightning integration for reg, the checkpoint registry.

- :class:`RegCheckpointIO`: a Lightning ``CheckpointIO`` plugin that pushes
  every checkpoint it saves and loads ``reg://NAME@REF`` paths.
- :class:`RegistryCallback`: for users who keep their own CheckpointIO;
  pushes each file ModelCheckpoint saves and tags ``best``.
- ``reg://NAME@REF`` works anywhere Lightning opens a checkpoint
  (``trainer.fit(ckpt_path=...)``, ``Model.load_from_checkpoint(...)``):
  importing this package registers an fsspec filesystem for the ``reg``
  protocol that pulls the version into a local cache.
"""

from .client import RegClient, RegError, RegNotFoundError
from .fs import RegFileSystem, register

__all__ = [
    "RegClient",
    "RegError",
    "RegNotFoundError",
    "RegFileSystem",
    "RegCheckpointIO",
    "RegistryCallback",
]

register()


def __getattr__(name):
    # Lightning is imported lazily so `import reg_lightning` stays cheap and
    # works where only the fsspec part is needed.
    if name == "RegCheckpointIO":
        from .checkpoint_io import RegCheckpointIO

        return RegCheckpointIO
    if name == "RegistryCallback":
        from .callback import RegistryCallback

        return RegistryCallback
    raise AttributeError(name)

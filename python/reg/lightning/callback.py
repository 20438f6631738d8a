"""``RegistryCallback``: push every checkpoint Lightning saves, file or
folder, whatever the strategy and CheckpointIO."""

import os
from typing import Any, List, Optional, Union

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io.wrapper import _WrappingCheckpointIO

from ..fs import fetch
from ..registry import Registry
from ._push import Pusher, as_registry, best_model_paths
from .checkpoint_io import RegCheckpointIO


def _innermost(io: Any) -> Any:
    """The CheckpointIO that really writes, under AsyncCheckpointIO and
    other wrappers."""
    while isinstance(io, _WrappingCheckpointIO) and io.checkpoint_io is not None:
        io = io.checkpoint_io
    return io


def _trainer_best_paths(trainer: "pl.Trainer") -> List[str]:
    return [os.path.abspath(cb.best_model_path) for cb in trainer.checkpoint_callbacks if getattr(cb, "best_model_path", "")]


class RegistryCallback(Callback):
    """Pushes each checkpoint after it is written and tags ``best`` when
    ModelCheckpoint reports a new best; a failing push raises and stops
    training.

    - Files (strategies that save through a CheckpointIO): the push runs
      right after the innermost CheckpointIO wrote the file, in the thread
      that wrote it (so under ``AsyncCheckpointIO`` it is asynchronous too).
      With a :class:`RegCheckpointIO` the plugin pushes and this callback
      does not push again.
    - Folders (sharded strategies write them themselves): pushed as one
      directory version when ``trainer.save_checkpoint`` returns, after
      every rank has written its shards, from global rank zero.
    - ``trainer.fit(ckpt_path="reg://NAME@REF")`` works with every
      strategy: the ref is pulled (a file, or a folder for a directory
      version) and the strategy loads the local path.
    """

    def __init__(
        self,
        name: str,
        registry: Union[None, str, "os.PathLike[str]", Registry] = None,
        remote: Optional[str] = None,
        tag_best: bool = True,
    ):
        self.name = name
        self.registry = as_registry(registry)
        self._pusher = Pusher(name, self.registry, remote, tag_best)
        self._hooked: List[Any] = []

    @property
    def pushed(self) -> List[str]:
        """``NAME@vN`` of every version this callback pushed, in order."""
        return self._pusher.pushed

    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if any(obj is trainer for obj in self._hooked):
            return
        self._hook_files(trainer)
        self._hook_folders(trainer)
        self._hook_loads(trainer)
        self._hooked.append(trainer)

    def _hook_files(self, trainer: "pl.Trainer") -> None:
        io = _innermost(trainer.strategy.checkpoint_io)
        if isinstance(io, RegCheckpointIO):
            return
        write = io.save_checkpoint
        pusher = self._pusher

        def save_checkpoint(checkpoint, path, storage_options=None):
            write(checkpoint, path, storage_options=storage_options)
            if trainer.is_global_zero:
                pusher.push(path, best_model_paths(checkpoint))

        io.save_checkpoint = save_checkpoint

    def _hook_folders(self, trainer: "pl.Trainer") -> None:
        save = trainer.save_checkpoint
        pusher = self._pusher

        def save_checkpoint(filepath, weights_only=None, storage_options=None):
            save(filepath, weights_only=weights_only, storage_options=storage_options)
            # Files were pushed by the CheckpointIO hook (maybe still being
            # written in a background thread); a folder was written here,
            # by the strategy, on every rank, before its barrier.
            if trainer.is_global_zero and os.path.isdir(filepath):
                pusher.push(filepath, _trainer_best_paths(trainer))

        trainer.save_checkpoint = save_checkpoint

    def _hook_loads(self, trainer: "pl.Trainer") -> None:
        strategy = trainer.strategy
        load = strategy.load_checkpoint
        registry = self.registry

        def load_checkpoint(checkpoint_path, *args, **kwargs):
            if str(checkpoint_path).startswith("reg://"):
                checkpoint_path = fetch(str(checkpoint_path), registry)
            return load(checkpoint_path, *args, **kwargs)

        strategy.load_checkpoint = load_checkpoint

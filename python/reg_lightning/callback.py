"""``RegistryCallback``: push every checkpoint file Lightning writes, for
users who keep their own CheckpointIO."""

import os
from typing import Optional

from lightning.pytorch.callbacks import Callback

from .checkpoint_io import best_model_paths
from .client import RegClient


class RegistryCallback(Callback):
    """Pushes each checkpoint file after the trainer's CheckpointIO wrote it
    (whatever CheckpointIO that is), and tags ``best`` when ModelCheckpoint
    reports a new best. A failing push raises and stops training."""

    def __init__(self, name: str, registry: Optional[str] = None, tag_best: bool = True):
        self.name = name
        self.tag_best = tag_best
        self.client = RegClient(registry)
        self.pushed = []
        self._wrapped = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        if self._wrapped is io:
            return
        original = io.save_checkpoint
        callback = self

        def save_checkpoint(checkpoint, path, storage_options=None):
            original(checkpoint, path, storage_options=storage_options)
            if trainer.is_global_zero:
                callback._push(checkpoint, path)

        io.save_checkpoint = save_checkpoint
        self._wrapped = io

    def _push(self, checkpoint, path) -> None:
        report = self.client.push(os.fspath(path), self.name)
        ref = f"{report['name']}@v{report['version']}"
        self.pushed.append(ref)
        if self.tag_best and os.path.abspath(os.fspath(path)) in set(best_model_paths(checkpoint)):
            self.client.tag(ref, "best")

"""``RegCheckpointIO``: a Lightning CheckpointIO that pushes what it saves."""

import os
from typing import Any, Dict, Optional

from lightning.pytorch.plugins.io import TorchCheckpointIO

from .client import RegClient
from .fs import fetch


def best_model_paths(checkpoint: Dict[str, Any]):
    """``best_model_path`` of every ModelCheckpoint state in a checkpoint."""
    callbacks = checkpoint.get("callbacks") or {}
    for key, state in callbacks.items():
        if str(key).startswith("ModelCheckpoint") and isinstance(state, dict):
            path = state.get("best_model_path")
            if path:
                yield os.path.abspath(str(path))


class RegCheckpointIO(TorchCheckpointIO):
    """Saves checkpoints like Lightning's ``TorchCheckpointIO`` and pushes
    each one to the registry as a version of ``name``.

    - ``save_checkpoint`` writes the file, then ``reg push``es it; a failing
      push raises :class:`~reg_lightning.RegError` and stops training.
      The version that ModelCheckpoint reports as its new best is tagged
      ``best`` (``tag_best=False`` to turn that off).
    - ``load_checkpoint("reg://NAME@REF")`` pulls the version and loads it.
    - ``remove_checkpoint`` deletes only the local file: the registry's own
      retention (``reg prune``) decides what it keeps.

    ``registry`` is a registry directory (default: what ``reg`` finds), and
    ``remote`` a remote name to upload to after each push.
    """

    def __init__(self, name: str, registry: Optional[str] = None, remote: Optional[str] = None, tag_best: bool = True):
        super().__init__()
        self.name = name
        self.remote = remote
        self.tag_best = tag_best
        self.client = RegClient(registry)
        self.pushed = []

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        super().save_checkpoint(checkpoint, path, storage_options=storage_options)
        report = self.client.push(os.fspath(path), self.name)
        ref = f"{report['name']}@v{report['version']}"
        self.pushed.append(ref)
        if self.tag_best and os.path.abspath(os.fspath(path)) in set(best_model_paths(checkpoint)):
            self.client.tag(ref, "best")
        if self.remote:
            self.client.run("sync", "push", self.remote, ref)

    def load_checkpoint(self, path, *args, **kwargs) -> Dict[str, Any]:
        if str(path).startswith("reg://"):
            path = fetch(str(path), self.client)
        return super().load_checkpoint(path, *args, **kwargs)

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)

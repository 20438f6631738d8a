"""``RegCheckpointIO``: a Lightning CheckpointIO that pushes what it saves."""

import os
from typing import Any, Dict, List, Optional, Union

from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import RegError
from ..fs import fetch
from ..registry import Registry
from ._push import Pusher, as_registry, best_model_paths

__all__ = ["RegCheckpointIO", "best_model_paths"]


class RegCheckpointIO(TorchCheckpointIO):
    """Saves checkpoints like Lightning's ``TorchCheckpointIO`` and pushes
    each one to the registry as a version of ``name``.

    - ``save_checkpoint`` writes the file, then ``reg push``es it; a failing
      push raises :class:`~reg.RegError` and stops training. Wrapped in
      ``AsyncCheckpointIO(RegCheckpointIO(...))`` both happen in Lightning's
      background thread and an error surfaces at the next save or at the
      end of ``fit``. The version that ModelCheckpoint reports as its new
      best is tagged ``best`` (``tag_best=False`` turns that off).
    - ``load_checkpoint("reg://NAME@REF")`` pulls the version (verified,
      into the per-user cache) and loads it.
    - ``remove_checkpoint`` deletes only the local file: the registry's own
      retention (``reg prune``) decides what it keeps.

    Strategies that save folders themselves (FSDP/ModelParallel sharded,
    DeepSpeed) never call a CheckpointIO to save: use
    :class:`~reg.lightning.RegistryCallback` with them.

    ``registry`` is a registry directory or a :class:`~reg.Registry`
    (default: what ``reg`` finds), ``remote`` a remote to upload each
    version to after its push.
    """

    def __init__(
        self,
        name: str,
        registry: Union[None, str, "os.PathLike[str]", Registry] = None,
        remote: Optional[str] = None,
        tag_best: bool = True,
    ):
        super().__init__()
        self.name = name
        self.registry = as_registry(registry)
        self._pusher = Pusher(name, self.registry, remote, tag_best)

    @property
    def pushed(self) -> List[str]:
        """``NAME@vN`` of every version this plugin pushed, in order."""
        return self._pusher.pushed

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        super().save_checkpoint(checkpoint, path, storage_options=storage_options)
        self._pusher.push(path, best_model_paths(checkpoint))

    def load_checkpoint(self, path, *args, **kwargs) -> Dict[str, Any]:
        if str(path).startswith("reg://"):
            local = fetch(str(path), self.registry)
            if os.path.isdir(local):
                raise RegError(
                    f"{path} is a directory version (a sharded checkpoint): the strategy that saved it loads it; "
                    "add reg.lightning.RegistryCallback to the Trainer, or pass ckpt_path=reg.pull_dir(...)"
                )
            path = local
        return super().load_checkpoint(path, *args, **kwargs)

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)

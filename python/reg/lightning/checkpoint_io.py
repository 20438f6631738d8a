"""``RegCheckpointIO``: a Lightning CheckpointIO that pushes what it saves."""

import os
from typing import Any, Dict, List, Optional, Union

from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import RegError
from ..fs import fetch
from ..registry import Registry
from ._push import Pusher, as_registry, best_model_paths

__all__ = ["RegCheckpointIO", "best_model_paths"]


def _let_last_find_versions() -> None:
    """Make ``ckpt_path="last"`` see the registry: Lightning's
    ``ModelCheckpoint._find_last_checkpoints`` lists ``last*.ckpt`` files in
    its folder, which a ``RegCheckpointIO`` that keeps no local files never
    writes. Wrapped once per process: for a trainer whose CheckpointIO is a
    RegCheckpointIO (under AsyncCheckpointIO too) the candidates also hold
    ``reg://NAME@latest`` when the name has a version; Lightning then takes
    the newest candidate by time (the version's push time, ``reg.fs``)."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.plugins.io.wrapper import _WrappingCheckpointIO

    original = ModelCheckpoint._find_last_checkpoints
    if getattr(original, "_reg_wrapped", False):
        return

    def find_last(self: Any, trainer: Any) -> Any:
        found = original(self, trainer)
        io = getattr(getattr(trainer, "strategy", None), "checkpoint_io", None)
        while isinstance(io, _WrappingCheckpointIO) and io.checkpoint_io is not None:
            io = io.checkpoint_io
        if isinstance(io, RegCheckpointIO) and not io.keep_local:
            try:
                io.registry.show(f"{io.name}@latest")
            except RegError:
                return found
            found = set(found) | {f"reg://{io.name}@latest"}
        return found

    find_last._reg_wrapped = True  # type: ignore[attr-defined]
    ModelCheckpoint._find_last_checkpoints = find_last


class RegCheckpointIO(TorchCheckpointIO):
    """Saves checkpoints like Lightning's ``TorchCheckpointIO`` and pushes
    each one to the registry as a version of ``name``.

    - ``save_checkpoint`` streams ``torch.save`` straight into ``reg push
      -``: the version is byte for byte the file Lightning would have
      written, recorded under its file name, and no local file is written
      (``keep_local=True`` writes it too, then pushes it). A failing push
      raises :class:`~reg.RegError` and stops training. Wrapped in
      ``AsyncCheckpointIO(RegCheckpointIO(...))`` both happen in Lightning's
      background thread and an error surfaces at the next save or at the
      end of ``fit``. The version that ModelCheckpoint reports as its new
      best is tagged ``best`` (``tag_best=False`` turns that off).
    - ``load_checkpoint("reg://NAME@REF")`` pulls the version (verified,
      into the per-user cache) and loads it. A local path this plugin
      saved but did not keep (``best_model_path``, ``ckpt_path="best"``)
      loads the version it became.
    - ``remove_checkpoint`` deletes only the local file (when there is
      one): ModelCheckpoint's top-k never removes a registry version, whose
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
        keep_local: bool = False,
    ):
        super().__init__()
        self.name = name
        #: Also write each checkpoint to its local path (as TorchCheckpointIO does).
        self.keep_local = keep_local
        self.registry = as_registry(registry)
        self._pusher = Pusher(name, self.registry, remote, tag_best)
        _let_last_find_versions()

    @property
    def pushed(self) -> List[str]:
        """``NAME@vN`` of every version this plugin pushed, in order."""
        return self._pusher.pushed

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if self.keep_local:
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            self._pusher.push(path, best_model_paths(checkpoint))
            return
        if storage_options is not None:
            raise TypeError(
                "`Trainer.save_checkpoint(..., storage_options=...)` with RegCheckpointIO: the checkpoint goes "
                f"to the registry, not to storage; got storage_options={storage_options!r}"
            )
        self._pusher.save(checkpoint, path, best_model_paths(checkpoint))

    def load_checkpoint(self, path, *args, **kwargs) -> Dict[str, Any]:
        saved = self._pusher.by_path.get(os.path.abspath(os.fspath(path))) if not str(path).startswith("reg://") else None
        if saved is not None and not os.path.exists(path):
            path = f"reg://{saved}"
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

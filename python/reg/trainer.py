"""``RegTrainerCallback``: push every ``checkpoint-N`` folder the transformers
Trainer saves as a version, and resume from one with :func:`reg.pull_dir`."""

import math
import os
import shutil
from typing import Any, List, Optional, Union

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .registry import Registry


def _number(x: Any) -> str:
    if isinstance(x, float) and math.isfinite(x) and x == int(x):
        return str(int(x))
    return f"{x:g}" if isinstance(x, float) else str(x)


class RegTrainerCallback(TrainerCallback):
    """Pushes the Trainer's ``checkpoint-N`` folder (weights, optimizer,
    scheduler, RNG and ``trainer_state.json``) as a version of ``name``
    after every save.

    reg reads step, epoch and the best metric from ``trainer_state.json``,
    so ``NAME@step=N`` and ``NAME@best`` find versions; the version message
    says them too. The checkpoint that the Trainer reports as its best
    (``state.best_model_checkpoint``) is tagged ``best``.

    - ``registry``: a registry directory or a :class:`reg.Registry`
      (default: what reg finds).
    - ``keep_optimizer_last``: after each push, drop optimizer and scheduler
      state from all but the newest N versions (``reg push
      --keep-optimizer-last N``: reg's background job does it, so training
      does not wait); their weights stay.
    - ``push_every_save=False``: push only the last checkpoint, when
      training ends.
    - ``keep_local=False``: delete each ``checkpoint-N`` folder once its
      version is pushed and verified (``reg verify NAME@vN``), so the disk
      holds the registry only. The folder the Trainer reports as its best
      (``state.best_model_checkpoint``) is kept while it is the best, as
      ``load_best_model_at_end`` reads it; the Trainer's own rotation
      (``save_total_limit``) lists the folders there are, so it never
      trips on one removed. Resume from ``reg.pull_dir("NAME@latest")``.

    A failing push raises :class:`reg.RegError` out of ``trainer.train()``:
    a run that cannot keep its checkpoints stops. Only the main process
    pushes. Resume: ``trainer.train(resume_from_checkpoint=
    reg.pull_dir("NAME@step=N"))``.
    """

    def __init__(
        self,
        name: str,
        registry: Union[None, str, "os.PathLike[str]", Registry] = None,
        keep_optimizer_last: Optional[int] = None,
        push_every_save: bool = True,
        tag_best: bool = True,
        keep_local: bool = True,
    ):
        if keep_optimizer_last is not None and keep_optimizer_last < 0:
            raise ValueError("keep_optimizer_last must be 0 or more")
        self.name = name
        self.registry = registry if isinstance(registry, Registry) else Registry(registry)
        self.keep_optimizer_last = keep_optimizer_last
        self.push_every_save = push_every_save
        self.tag_best = tag_best
        self.keep_local = keep_local
        # Pushed folders kept only because they were the best.
        self._kept_best: List[str] = []
        #: ``NAME@vN`` of every version pushed, in order.
        self.pushed: List[str] = []
        self._last_saved: Optional[str] = None

    @staticmethod
    def checkpoint_dir(args: Any, state: Any) -> str:
        """The folder the Trainer just saved (``output_dir/checkpoint-STEP``)."""
        return os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        path = self.checkpoint_dir(args, state)
        if self.push_every_save:
            self.push(path, state)
        else:
            self._last_saved = path

    def on_train_end(self, args, state, control, **kwargs):
        if self.push_every_save or not state.is_world_process_zero or self._last_saved is None:
            return
        if os.path.isdir(self._last_saved):
            self.push(self._last_saved, state)

    def push(self, path: str, state: Any) -> str:
        """Push one checkpoint folder; returns ``NAME@vN``."""
        message = f"transformers Trainer: step {state.global_step}"
        if state.epoch is not None:
            message += f", epoch {_number(state.epoch)}"
        if state.best_metric is not None:
            message += f", best metric {_number(state.best_metric)}"
        report = self.registry.push(
            path, name=self.name, message=message, keep_optimizer_last=self.keep_optimizer_last
        )
        ref = f"{report['name']}@v{report['version']}"
        self.pushed.append(ref)
        best = state.best_model_checkpoint
        is_best = bool(best) and os.path.isdir(best) and os.path.samefile(best, path)
        if self.tag_best and is_best:
            self.registry.tag(ref, "best")
        if not self.keep_local:
            self._drop_local(path, ref, best)
        return ref

    def _drop_local(self, path: str, ref: str, best: Optional[str]) -> None:
        """Delete the pushed folder once reg has verified its version;
        keep the current best one (and delete a best one that no longer is)."""
        self.registry.run("verify", ref)

        def is_best(p: str) -> bool:
            return bool(best) and os.path.isdir(best) and os.path.isdir(p) and os.path.samefile(best, p)

        for old in list(self._kept_best):
            if not is_best(old):
                shutil.rmtree(old, ignore_errors=True)
                self._kept_best.remove(old)
        if is_best(path):
            self._kept_best.append(path)
        else:
            shutil.rmtree(path, ignore_errors=True)

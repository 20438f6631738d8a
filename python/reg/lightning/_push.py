"""Pushing a saved checkpoint (file or folder) and tagging the best one:
the part RegCheckpointIO and RegistryCallback share."""

import os
import threading
from typing import Any, Dict, Iterable, List, Optional, Union

from ..registry import Registry


def best_model_paths(checkpoint: Dict[str, Any]) -> Iterable[str]:
    """``best_model_path`` of every ModelCheckpoint state in a checkpoint."""
    callbacks = checkpoint.get("callbacks") or {}
    for key, state in callbacks.items():
        if str(key).startswith("ModelCheckpoint") and isinstance(state, dict):
            path = state.get("best_model_path")
            if path:
                yield os.path.abspath(str(path))


def as_registry(registry: Union[None, str, "os.PathLike[str]", Registry]) -> Registry:
    """A Registry from a Registry, a registry directory, or None (reg finds it)."""
    return registry if isinstance(registry, Registry) else Registry(registry)


class Pusher:
    """Pushes checkpoints of one model name; safe to call from the thread
    AsyncCheckpointIO saves in."""

    def __init__(self, name: str, registry: Registry, remote: Optional[str], tag_best: bool):
        self.name = name
        self.registry = registry
        self.remote = remote
        self.tag_best = tag_best
        #: ``NAME@vN`` of every version pushed, in push order.
        self.pushed: List[str] = []
        self._lock = threading.Lock()

        #: The version each saved path became (the newest save of a path
        #: wins), so a path Lightning names later (``best_model_path``,
        #: ``ckpt_path="best"``) loads from the registry when no local file
        #: was kept.
        self.by_path: Dict[str, str] = {}

    def push(self, path: Union[str, "os.PathLike[str]"], best_paths: Iterable[str]) -> str:
        """Push ``path``; tag it ``best`` if it is among ``best_paths``;
        upload it to the remote. Raises RegError when any step fails."""
        path = os.path.abspath(os.fspath(path))
        with self._lock:  # one push at a time keeps version numbers in save order
            return self._after(path, self.registry.push(path, name=self.name), best_paths)

    def save(self, checkpoint: Dict[str, Any], path: Union[str, "os.PathLike[str]"], best_paths: Iterable[str]) -> str:
        """``torch.save`` ``checkpoint`` straight into the registry (``reg
        push -``, recorded under ``path``'s file name; no file written),
        then as :meth:`push`."""
        path = os.path.abspath(os.fspath(path))
        with self._lock:
            report = self.registry.save(checkpoint, name=self.name, source=os.path.basename(path))
            return self._after(path, report, best_paths)

    def _after(self, path: str, report: Dict[str, Any], best_paths: Iterable[str]) -> str:
        ref = f"{report['name']}@v{report['version']}"
        self.pushed.append(ref)
        self.by_path[path] = ref
        if self.tag_best and path in set(best_paths):
            self.registry.tag(ref, "best")
        if self.remote:
            self.registry.run("sync", "push", self.remote, ref)
        return ref

"""``torch.distributed.checkpoint`` (DCP) storage plugins: save into and
load from a reg registry.

- :class:`RegStorageWriter` (``dcp.save(sd, storage_writer=RegStorageWriter("run"))``
  and ``dcp.async_save``): every rank streams each data file it would
  write (the bytes torch's ``FileSystemWriter`` writes) into a ``reg
  stage`` process of its own, which cuts it item by item as it arrives:
  each tensor chunk goes straight into a blob of the registry (hashed,
  fsynced; a chunk the registry holds already, a frozen tensor, is only
  hashed), the rest (zip records, pickles, small tensors) into a sparse
  file of a private staging session (``staging/ID/``, shared by the
  ranks of one machine or of a shared file system). No folder of the
  checkpoint is written first. Once every rank has written, the
  coordinator's ``finish`` writes ``.metadata`` and runs ``reg push
  --staged``, which makes one directory version (layout ``dcp``; its
  chunks deduplicated against every version) from the session, then
  removes it. The coordinator holds the session's lock from the start, so
  gc never removes a live session and removes one whose coordinator died;
  a save that fails leaves no version.
- :class:`RegStorageReader` (``dcp.load(sd, storage_reader=RegStorageReader("run@step=400"))``):
  each rank reads only the byte ranges of the chunks its plan needs
  (``reg cat REF FILE --range START:LEN``), so loading with another number
  of ranks than saved (re-sharding) reads what each rank needs, not every
  file.

Both need torch >= 2.4 (``torch.distributed.checkpoint.FileSystemWriter``
and ``FileSystemReader`` are their bases: the files are exactly theirs).
The staging session's path goes from the coordinator (rank 0 of the
default process group) to the other ranks by ``broadcast_object_list``.
"""

import atexit
import fcntl
import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch.distributed as dist
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

from torch.distributed.checkpoint.filesystem import FileSystem

from .errors import RegError
from .registry import Registry, _push_flags, default_registry

__all__ = ["RegStorageWriter", "RegStorageReader"]

_SCHEME = "reg://"


def _as_registry(registry: Union[None, str, "os.PathLike[str]", Registry]) -> Registry:
    if isinstance(registry, Registry):
        return registry
    return Registry(registry) if registry is not None else default_registry()


class _StagingFiles(FileSystem):
    """The ``fs`` of a :class:`RegStorageWriter`: a data file written is
    streamed into ``reg stage`` (its session is the checkpoint folder's
    parent); other files (``.metadata``) are written as files."""

    def __init__(self, registry: Registry):
        super().__init__()
        self.registry = registry

    @contextmanager
    def create_stream(self, path: Any, mode: str) -> Iterator[Any]:
        name = os.fspath(path)
        if "w" in mode and name.endswith(".distcp"):
            folder = os.path.dirname(name)
            session = os.path.dirname(folder)
            rel = os.path.relpath(name, session)
            with self.registry.piped("stage", session, rel, "--json") as run:
                yield run.writer
        else:
            with super().create_stream(path, mode) as stream:
                yield stream


class RegStorageWriter(FileSystemWriter):
    """A DCP ``StorageWriter`` whose checkpoint becomes a version of ``name``.

    ``tag`` and ``message`` go with the version; ``thread_count`` and
    ``single_file_per_rank`` are ``FileSystemWriter``'s. After a save the
    coordinator's :attr:`report` is the push report (``name``, ``version``
    ...). ``dcp.save(..., checkpoint_id="reg://NAME")`` names the model too.
    """

    def __init__(
        self,
        name: str,
        registry: Union[None, str, "os.PathLike[str]", Registry] = None,
        *,
        tag: Optional[str] = None,
        message: Optional[str] = None,
        thread_count: int = 1,
        single_file_per_rank: bool = True,
    ):
        self.name = name
        self.registry = _as_registry(registry)
        self.tag = tag
        self.message = message
        #: The push report of the last save (coordinator only).
        self.report: Optional[Dict[str, Any]] = None
        self._session: Optional[Tuple[str, Any]] = None
        # reg fsyncs what it stores: the staged files need not be.
        super().__init__(
            path=os.path.join(tempfile.gettempdir(), "reg-dcp-unset"),
            single_file_per_rank=single_file_per_rank,
            sync_files=False,
            thread_count=thread_count,
            overwrite=True,
        )
        self.fs = _StagingFiles(self.registry)
        self._global_plan: Optional[List[Any]] = None
        atexit.register(self._close_session)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Union[str, "os.PathLike[str]"]) -> bool:
        return str(checkpoint_id).startswith(_SCHEME)

    @property
    def checkpoint_id(self) -> str:
        return f"{_SCHEME}{self.name}"

    def reset(self, checkpoint_id: Union[None, str, "os.PathLike[str]"] = None) -> None:
        if checkpoint_id is not None and str(checkpoint_id).startswith(_SCHEME):
            self.name = str(checkpoint_id)[len(_SCHEME):]
        elif checkpoint_id:
            raise RegError(f"RegStorageWriter saves to {_SCHEME}NAME, not to {checkpoint_id!r}")
        super().reset(None)

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        super().set_up_storage_writer(is_coordinator, *args, **kwargs)
        self._close_session()  # what a failed save through this writer left
        self.report = None
        # The coordinator broadcasts whatever happens: a failure to open the
        # session (no reg binary, a registry it cannot write) goes to every
        # rank as ("error", message), or the others would wait for the
        # broadcast forever while the coordinator reports its error.
        failure: Optional[BaseException] = None
        sent: Tuple[str, str] = ("error", "no staging folder came from the coordinator (rank 0)")
        if is_coordinator:
            try:
                sent = ("path", self._open_session())
            except BaseException as e:  # noqa: BLE001 - re-raised below, after the broadcast
                failure = e
                sent = ("error", f"the coordinator (rank 0) could not start the save: {e}")
        if dist.is_available() and dist.is_initialized() and self.use_collectives:
            box: List[Optional[Tuple[str, str]]] = [sent]
            dist.broadcast_object_list(box, src=0)
            sent = box[0] or sent
        if failure is not None:
            raise failure
        kind, value = sent
        if kind != "path":
            raise RegError(f"RegStorageWriter: {value}")
        self.path = self.fs.init_path(value)

    def prepare_global_plan(self, plans: List[Any]) -> List[Any]:
        self._global_plan = super().prepare_global_plan(plans)
        return self._global_plan

    def finish(self, metadata: Any, results: Any) -> None:
        if self._session is None:
            raise RegError("RegStorageWriter.finish on a rank that is not the coordinator")
        try:
            self._check_results(results)
            super().finish(metadata, results)
            # fast: the chunks are stored as they came; reg's background
            # job compresses them after the save returns.
            flags = _push_flags(self.name, None, self.tag, self.message, None, True)
            self.report = self.registry.json("push", os.fspath(self.path), *flags, "--staged", self._session[0])
        finally:
            self._close_session()

    def _check_results(self, results: List[List[Any]]) -> None:
        """Every item a rank wrote is one its save plan listed: a rank that
        sends another leaves no version, and the error names it."""
        if self._global_plan is None:
            return
        for rank, (plan, written) in enumerate(zip(self._global_plan, results)):
            planned = {item.index for item in plan.items}
            for result in written:
                if result.index not in planned:
                    raise RegError(
                        f"rank {rank} wrote {result.index.fqn!r} (offset {list(result.index.offset or [])}), "
                        "which its save plan did not list; no version was stored"
                    )

    def _open_session(self) -> str:
        staging = self.registry.json("init")["staging"]
        session = tempfile.mkdtemp(prefix="dcp-", dir=staging)
        lock = open(os.path.join(session, ".lock"), "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        self._session = (session, lock)
        # The folder's name is what the version records as its source (what
        # `reg pull` writes by default): the model's name, made a file name.
        folder = "".join(c if c.isalnum() or c in "._=-" else "_" for c in self.name).lstrip(".") or "checkpoint"
        checkpoint = os.path.join(session, folder)
        os.mkdir(checkpoint)
        return checkpoint

    def _close_session(self) -> None:
        if self._session is None:
            return
        session, lock = self._session
        self._session = None
        shutil.rmtree(session, ignore_errors=True)
        lock.close()


class _VersionFile(io.RawIOBase):
    """One file of a directory version, read by byte ranges through ``reg
    cat``; ranges fetched ahead (:meth:`prefetch`) are served from memory."""

    def __init__(self, files: "_VersionFiles", path: str):
        super().__init__()
        self._files = files
        self._path = path
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = pos
        elif whence == io.SEEK_CUR:
            self._pos += pos
        else:
            raise io.UnsupportedOperation("seek from the end of a version's file")
        return self._pos

    def read(self, n: int = -1) -> bytes:
        data = self._files.read(self._path, self._pos, None if n is None or n < 0 else n)
        self._pos += len(data)
        return data

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class _VersionFiles:
    """The ``fs`` of a :class:`RegStorageReader`: paths are file names in
    the version, streams are :class:`_VersionFile`."""

    def __init__(self, registry: Registry, ref: str):
        self.registry = registry
        self.ref = ref
        self._cache: Dict[str, List[Tuple[int, bytes]]] = {}

    def init_path(self, path: Any) -> str:
        return str(path)

    def concat_path(self, path: Any, suffix: str) -> str:
        return suffix

    @contextmanager
    def create_stream(self, path: Any, mode: str) -> Iterator[io.RawIOBase]:
        if "r" not in mode or "w" in mode or "a" in mode:
            raise RegError(f"{self.ref} is read-only here (mode {mode!r})")
        yield _VersionFile(self, str(path))

    def exists(self, path: Any) -> bool:
        return True

    def prefetch(self, path: str, ranges: List[Tuple[int, int]]) -> None:
        """Fetch ``ranges`` (start, length) of ``path`` in one ``reg cat``."""
        ranges = sorted(set(r for r in ranges if r[1] > 0))
        if not ranges:
            return
        args = ["cat", self.ref, path]
        for start, length in ranges:
            args += ["--range", f"{start}:{length}"]
        data = self.registry.run_bytes(*args)
        at = 0
        got = self._cache.setdefault(path, [])
        for start, length in ranges:
            got.append((start, data[at: at + length]))
            at += length

    def read(self, path: str, pos: int, n: Optional[int]) -> bytes:
        if n is not None:
            for start, data in self._cache.get(path, []):
                if start <= pos and pos + n <= start + len(data):
                    return data[pos - start: pos - start + n]
        if n is None:
            whole = self.registry.run_bytes("cat", self.ref, path)
            return whole[pos:]
        return self.registry.run_bytes("cat", self.ref, path, "--range", f"{pos}:{n}")


class RegStorageReader(FileSystemReader):
    """A DCP ``StorageReader`` of a directory version (layout ``dcp``):
    ``dcp.load(state_dict, storage_reader=RegStorageReader("run@step=400"))``.
    Each rank fetches only the byte ranges of the chunks its load plan
    reads (one ``reg cat`` per file), checked against their blobs' ids."""

    def __init__(self, ref: str, registry: Union[None, str, "os.PathLike[str]", Registry] = None):
        if ref.startswith(_SCHEME):
            ref = ref[len(_SCHEME):]
        super().__init__(path=ref)
        self.ref = ref
        self.registry = _as_registry(registry)
        self.fs = _VersionFiles(self.registry, ref)
        self.path = ref

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Union[str, "os.PathLike[str]"]) -> bool:
        return str(checkpoint_id).startswith(_SCHEME)

    def reset(self, checkpoint_id: Union[None, str, "os.PathLike[str]"] = None) -> None:
        if checkpoint_id is not None and str(checkpoint_id).startswith(_SCHEME):
            self.ref = str(checkpoint_id)[len(_SCHEME):]
            self.fs = _VersionFiles(self.registry, self.ref)
        super().reset(None)
        self.path = self.ref

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        shown = self.registry.show(self.ref)
        layout = shown.get("layout")
        if layout != "dcp":
            what = f"a directory version of layout {layout}" if layout else "a single-file version"
            raise RegError(f"{self.ref} is {what}, not a torch.distributed.checkpoint (dcp) version")
        return super().read_metadata(*args, **kwargs)

    def read_data(self, plan: Any, planner: Any) -> Any:
        per_file: Dict[str, List[Tuple[int, int]]] = {}
        for item in plan.items:
            info = self.storage_data[item.storage_index]
            per_file.setdefault(info.relative_path, []).append((info.offset, info.length))
        for path, ranges in per_file.items():
            self.fs.prefetch(path, ranges)
        return super().read_data(plan, planner)

"""One copy of a model's arrays per host: a file per model version that every process of the
host memory-maps read-only, instead of each process holding its own copy (docs/operations.md,
Memory)."""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import logging
import math
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from feed.model.store import ModelMeta
from recommender.model import ARTIFACT_FORMAT, PER_ARTICLE, CorpusModel
from recommender.rows import Storage, capacity_for

log = logging.getLogger(__name__)

# Bumped when the file layout below changes: the name changes with it, so no process maps a
# file of another layout.
FILE_FORMAT = 1
MAGIC = b"NFARRAYS"
_HEADER_AT = struct.Struct("<QQ")  # where the JSON header starts, and its length
# Every array starts on a page: its pages are its own, and a copy-on-write page holds no
# neighbour's bytes.
ALIGN = mmap.PAGESIZE
SUFFIX = ".arrays"
LOCK_NAME = ".write.lock"  # held by the one process writing a file
# Files of older versions past the newest few are deleted when a new one is written. Two: the
# current model, and the one some process may still be ranking with while it loads the new.
# A process that maps a deleted file keeps its pages (Linux frees them with the last map).
KEEP_FILES = 2
# A temporary file this old belongs to a writer that died mid-way.
STALE_TEMP_SECONDS = 10 * 60
# Written with room to append (recommender/rows.py), which a process maps copy-on-write, so
# articles written after the fit cost it only the pages they touch: the vectors' entries here,
# and the arrays of a row per article (PER_ARTICLE).
GROWABLE = ("vectors_data", "vectors_indices")


class SharedModels:
    """This process's way to its host's model files; an empty ``directory`` keeps every model
    in this process's memory, as does a directory it cannot use (one warning)."""

    def __init__(self, directory: str) -> None:
        self._directory = Path(directory) if directory else None
        self._warned = False

    def load(self, meta: ModelMeta, fetch: Callable[[], bytes | None]) -> CorpusModel | None:
        """The model of ``meta``: mapped from the host's file when a process wrote it, else
        decoded from ``fetch()`` (its artifact; None: gone) and shared. Raises ValueError
        for an artifact of another format."""

        def decode() -> CorpusModel | None:
            artifact = fetch()
            return None if artifact is None else CorpusModel.from_bytes(artifact)

        return self._shared(meta, decode)

    def share(self, meta: ModelMeta, model: CorpusModel) -> CorpusModel:
        """``model`` (this process fitted it) around its arrays in the host's file."""
        return self._shared(meta, lambda: model) or model

    def _shared(
        self, meta: ModelMeta, decode: Callable[[], CorpusModel | None]
    ) -> CorpusModel | None:
        """The model mapped from the host's file, written first from ``decode()`` unless there;
        ``decode()`` itself when there is no directory or it cannot be used."""
        directory = self._usable()
        if directory is None:
            return decode()
        path = directory / file_name(meta)
        mapped = self._open(path)
        if mapped is not None:
            return mapped
        try:
            lock = _write_lock(directory)
        except OSError as exc:
            self._warn(exc)
            return decode()
        with lock:
            # The processes of a host that start together all miss above: the first reads,
            # decodes and writes while the others wait, then they map its file rather than
            # each reading and decoding a copy (a peak their heaps keep) and mapping a file
            # of its own (no sharing).
            mapped = self._open(path)
            if mapped is not None:
                return mapped
            model = decode()
            if model is None:
                return None
            try:
                write_arrays(path, model.to_arrays(derived=True), _room(model))
                _clean(directory, keep=path)
                mapped = open_model(path)
            except (OSError, ValueError) as exc:  # a full disk, say: this copy serves
                self._warn(exc)
                return model
        del model  # the decoded copy: the caller keeps the mapped one
        _return_freed_memory()
        return mapped

    def _usable(self) -> Path | None:
        """The directory, unless there is none or it cannot be used (warned once)."""
        if self._directory is None:
            return None
        try:
            _check_directory(self._directory)
        except OSError as exc:
            self._warn(exc)
            return None
        return self._directory

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "model files unusable in %s (%s): this process keeps its own copy",
                self._directory,
                exc,
            )

    def _open(self, path: Path) -> CorpusModel | None:
        try:
            model = open_model(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # damaged (a disk error, a person): write anew
            log.warning("model file %s unreadable (%s); writing it again", path, exc)
            path.unlink(missing_ok=True)  # a process mapping it keeps its pages
            return None
        try:
            os.utime(path)  # in use: among the newest when the next version cleans up
        except OSError:
            pass
        return model


def file_name(meta: ModelMeta) -> str:
    """A name only this artifact has on this host since boot: two stores (a test's, a
    bench's) both at version 3 differ in their meta, and a file that survived a reboot (a
    write the crash may have torn) is never mapped."""
    key = json.dumps([meta.__dict__, ARTIFACT_FORMAT, FILE_FORMAT, _boot_id()], sort_keys=True)
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return f"model-{meta.version}-{digest}{SUFFIX}"


def open_model(path: Path) -> CorpusModel:
    """The model in ``path``, around read-only maps of its arrays (no copy)."""
    arrays, growable = map_arrays(path)
    storage = per_article = None
    if all(name in growable for name in GROWABLE):
        used = len(arrays["vectors_data"])
        storage = Storage({name[len("vectors_") :]: growable[name] for name in GROWABLE}, used)
    if all(name in growable for name in PER_ARTICLE):
        per_article = Storage({name: growable[name] for name in PER_ARTICLE}, len(arrays["ids"]))
    return CorpusModel.from_arrays(arrays, storage, per_article)


def write_arrays(path: Path, arrays: Mapping[str, NDArray[Any]], room: Mapping[str, int]) -> None:
    """Write ``arrays`` to ``path`` at once for every reader: into a temporary file of the same
    directory, then renamed over. ``room``: elements left free (zeros) after an array."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(MAGIC + bytes(_HEADER_AT.size))
            layout: dict[str, dict[str, Any]] = {}
            for name, array in arrays.items():
                flat = np.ascontiguousarray(array).reshape(-1)
                offset = _aligned(out.tell())
                out.seek(offset)
                out.write(flat.view(np.uint8).data)
                spare = room.get(name, 0)
                # A hole: reads as zeros, takes no disk or page cache until written.
                out.seek(spare * flat.itemsize, os.SEEK_CUR)
                layout[name] = {
                    "dtype": array.dtype.str,
                    "shape": list(array.shape),
                    "offset": offset,
                    "room": spare,
                }
            header = json.dumps(layout).encode()
            header_at = out.tell()
            out.write(header)
            out.seek(len(MAGIC))
            out.write(_HEADER_AT.pack(header_at, len(header)))
        os.rename(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def map_arrays(path: Path) -> tuple[dict[str, NDArray[Any]], dict[str, NDArray[Any]]]:
    """The arrays of ``path``, mapped read-only; and those written with room, with it, mapped
    copy-on-write (this process's writes stay its own, and cost only the pages written)."""
    with path.open("rb") as handle:
        shared = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        header_start = len(MAGIC) + _HEADER_AT.size
        if len(shared) < header_start or shared[: len(MAGIC)] != MAGIC:
            raise ValueError("not a model file")
        header_at, length = _HEADER_AT.unpack(shared[len(MAGIC) : header_start])
        layout: dict[str, dict[str, Any]] = json.loads(shared[header_at : header_at + length])
        private = None
        if any(entry["room"] for entry in layout.values()):
            private = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    arrays: dict[str, NDArray[Any]] = {}
    growable: dict[str, NDArray[Any]] = {}
    for name, entry in layout.items():
        dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
        count = math.prod(shape)
        if entry["offset"] + (count + entry["room"]) * dtype.itemsize > header_at:
            raise ValueError(f"model file truncated at {name}")
        arrays[name] = np.frombuffer(shared, dtype, count, entry["offset"]).reshape(shape)
        if entry["room"] and private is not None:
            whole = np.frombuffer(private, dtype, count + entry["room"], entry["offset"])
            growable[name] = whole.reshape((-1, *shape[1:]))  # room for whole rows
    return arrays, growable


def _room(model: CorpusModel) -> dict[str, int]:
    """Room to append articles to the vectors and the per-article arrays, as the copies an
    extension makes in memory would have (elements, of whole rows)."""
    rows = capacity_for(model.size) - model.size
    room = {name: rows * math.prod(getattr(model, name).shape[1:]) for name in PER_ARTICLE}
    used = len(model.vectors.data)
    capacity = capacity_for(used)
    if capacity <= np.iinfo(model.vectors.indices.dtype).max:  # its indices address the room
        room |= dict.fromkeys(GROWABLE, capacity - used)
    return room


def _check_directory(directory: Path) -> None:
    """Create ``directory`` for this user alone; refuse one another user could write to (its
    files would be mapped as models)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o022:
        raise PermissionError(f"{directory} is not this user's alone")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{directory} is not writable")


def _clean(directory: Path, keep: Path) -> None:
    """Best-effort: delete all but the newest KEEP_FILES model files, and dead writers' temps."""
    files: list[tuple[float, Path]] = []
    for candidate in directory.glob(f"model-*{SUFFIX}"):
        try:
            files.append((candidate.stat().st_mtime, candidate))
        except OSError:  # deleted by another process meanwhile
            continue
    files.sort(reverse=True)
    old = [path for _, path in files[KEEP_FILES:] if path != keep]
    now = time.time()
    for temporary in directory.glob(f".tmp-*{SUFFIX}"):
        try:
            if now - temporary.stat().st_mtime > STALE_TEMP_SECONDS:
                old.append(temporary)
        except OSError:
            continue
    for path in old:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("could not delete old model file %s: %s", path, exc)


def _write_lock(directory: Path) -> IO[bytes]:
    """The directory's write lock, held until the file returned is closed."""
    handle = open(os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600), "rb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError:
        handle.close()
        raise
    return handle


def _return_freed_memory() -> None:
    """Give the heap pages freed since back to the system. Some of the writer's decoded copy
    was arrays under glibc's mmap threshold, whose freed pages glibc otherwise keeps beside
    the map (10 MB at 100k articles, measured as bench/memory.py does). Best-effort; a no-op
    off glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: names then only tell stores apart
        return ""

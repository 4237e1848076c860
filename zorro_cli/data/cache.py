"""Reading a finished cache: ``open_cache`` -> ``Cache`` (index, settings, statistics, clips' arrays).

The layout is described (and named) in ``layout.py``; shards are written by ``shards.py`` and the index
by ``index.py``. Reading needs h5py and libjpeg-turbo only: no PyAV, no decoding pipeline.
"""

from __future__ import annotations

import csv
import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, overload

import h5py
import numpy as np

from ..errors import UsageError
from .jpeg import decode_jpeg
from .layout import INDEX, META, SUMMARY, read_json_dataset, shard_path

MAX_OPEN = 64  # open shard files per process (least recently used closed first)


class CacheError(UsageError):
    """A cache folder that cannot be used (missing, other settings, incomplete); one-line message."""


@contextmanager
def read_errors(path: Path) -> Iterator[None]:
    """Turn a failed read of shard ``path`` into a one-line ``CacheError``. Shards are written with a
    Fletcher-32 checksum per chunk and checksummed metadata (``shards.py``), which HDF5 verifies on
    every read: flipped bytes end up here instead of in a batch."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise CacheError(f"{path}: corrupt or unreadable shard ({reason}); rebuild the cache "
                         "(zorro preprocess ... --rebuild)") from None


@contextmanager
def _damaged(path: Path) -> Iterator[None]:
    """A file of the cache that cannot be read as written is one line naming it, not a traceback."""
    try:
        yield
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise CacheError(f"{path}: cannot be read as this cache's ({reason}); rebuild the cache "
                         "(zorro preprocess ... --rebuild)") from None


class IndexRow(NamedTuple):
    """One row of ``index.csv`` (types restored)."""

    clip_id: str
    path: str
    split: str
    labels: tuple[int, ...]
    shard: int
    row: int
    has_audio: bool
    has_video: bool
    duration_s: float
    n_frames: int
    audio_frames: int
    width: int
    height: int
    frame_offset: int
    mel_offset: int


class _Strings:
    """Many strings in one UTF-8 buffer + offsets: two numpy arrays instead of one Python object each."""

    def __init__(self, items: list[str]) -> None:
        data = [x.encode() for x in items]
        self.offsets = np.zeros(len(data) + 1, np.int64)
        np.cumsum([len(b) for b in data], out=self.offsets[1:])
        self.buf = np.frombuffer(b"".join(data), np.uint8)

    def __getitem__(self, i: int) -> str:
        return self.buf[self.offsets[i]:self.offsets[i + 1]].tobytes().decode()


_NUMERIC = {"shard": np.int32, "row": np.int32, "duration_s": np.float64, "n_frames": np.int32,
            "audio_frames": np.int32, "width": np.int32, "height": np.int32, "frame_offset": np.int64,
            "mel_offset": np.int64}


class ClipIndex(Sequence[IndexRow]):
    """``index.csv`` held as columns: numpy arrays and packed string tables, about 100 bytes per clip and no
    Python object per clip. At AudioSet scale (2M clips) a list of row tuples took over 1 GB per process,
    and DataLoader workers forked from it copied those pages as they touched the objects' reference counts;
    numpy buffers stay shared. Rows are built on demand (``index[i]``, iteration); ``position(clip_id)``
    builds its lookup table on first use."""

    def __init__(self, path: Path) -> None:
        cols: dict[str, list[Any]] = {k: [] for k in ("clip_id", "path", "split", *_NUMERIC, "has_audio", "has_video")}
        label_ids: list[int] = []
        label_counts: list[int] = []
        with path.open(newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                for k, v in cols.items():
                    v.append(r[k])
                ids = [int(x) for x in r["label_ids"].split(";") if x != ""]
                label_ids.extend(ids)
                label_counts.append(len(ids))
        self.clip_id, self.path = _Strings(cols["clip_id"]), _Strings(cols["path"])
        self.split_names: list[str] = sorted(set(cols["split"]))
        code = {name: i for i, name in enumerate(self.split_names)}
        self.split_code = np.array([code[x] for x in cols["split"]], np.int16)
        self.columns = {k: np.array(cols[k], dtype=t) for k, t in _NUMERIC.items()}
        self.has_audio = np.array(cols["has_audio"]) == "1"
        self.has_video = np.array(cols["has_video"]) == "1"
        self.label_ids = np.array(label_ids, np.int32)
        self.label_offsets = np.zeros(len(label_counts) + 1, np.int64)
        np.cumsum(label_counts, out=self.label_offsets[1:])
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.split_code)

    @overload
    def __getitem__(self, i: int) -> IndexRow: ...

    @overload
    def __getitem__(self, i: slice) -> IndexView: ...

    def __getitem__(self, i: int | slice) -> IndexRow | IndexView:
        if isinstance(i, slice):
            return IndexView(self, np.arange(len(self))[i])
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"clip index {i} out of range (0..{len(self) - 1})")
        c = {k: v[i].item() for k, v in self.columns.items()}
        labels = tuple(self.label_ids[self.label_offsets[i]:self.label_offsets[i + 1]].tolist())
        return IndexRow(self.clip_id[i], self.path[i], self.split_names[self.split_code[i]], labels, c["shard"],
                        c["row"], bool(self.has_audio[i]), bool(self.has_video[i]), c["duration_s"], c["n_frames"],
                        c["audio_frames"], c["width"], c["height"], c["frame_offset"], c["mel_offset"])

    def select(self, mask: np.ndarray) -> IndexView:
        """The rows where the boolean ``mask`` is true."""
        return IndexView(self, np.flatnonzero(mask))

    def in_splits(self, splits: set[str] | None) -> np.ndarray:
        """Boolean mask of the clips in ``splits`` (all clips for None)."""
        if splits is None:
            return np.ones(len(self), bool)
        return np.isin(self.split_code, [i for i, n in enumerate(self.split_names) if n in splits])

    def position(self, clip_id: str) -> int:
        """Row number of ``clip_id``; ``KeyError`` when absent."""
        if self._positions is None:
            self._positions = {self.clip_id[i]: i for i in range(len(self))}
        return self._positions[clip_id]


class IndexView(Sequence[IndexRow]):
    """The rows of a ``ClipIndex`` at some positions (a selection, a slice), built on demand."""

    def __init__(self, source: ClipIndex, positions: np.ndarray) -> None:
        self.source, self.positions = source, positions

    def __len__(self) -> int:
        return len(self.positions)

    @overload
    def __getitem__(self, i: int) -> IndexRow: ...

    @overload
    def __getitem__(self, i: slice) -> IndexView: ...

    def __getitem__(self, i: int | slice) -> IndexRow | IndexView:
        if isinstance(i, slice):
            return IndexView(self.source, self.positions[i])
        return self.source[int(self.positions[i])]


def read_index(path: Path) -> ClipIndex:
    """Rows of an ``index.csv`` (a sequence of ``IndexRow``, stored by columns)."""
    return ClipIndex(path)


class Cache:
    """Read access to a finished cache. HDF5 files open lazily, once per process (fork/spawn safe)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.dir = Path(cache_dir)
        if not (self.dir / INDEX).is_file():
            raise CacheError(f"{self.dir} is not a finished cache (no {INDEX})")
        with _damaged(self.dir / META):
            meta = json.loads((self.dir / META).read_text(encoding="utf-8"))
            self.settings: dict[str, Any] = dict(meta["settings"])
            self.fingerprint: str = str(meta["fingerprint"])
            self.label_names: list[str] = list(meta["label_names"])
            self.multilabel: bool = bool(meta["multilabel"])
        with _damaged(self.dir / SUMMARY):
            self.stats: dict[str, Any] = json.loads((self.dir / SUMMARY).read_text(encoding="utf-8")).get("stats", {})
        with _damaged(self.dir / INDEX):
            self.index: ClipIndex = read_index(self.dir / INDEX)
        self._files: OrderedDict[int, h5py.File] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = OrderedDict()  # handles never cross processes (spawn pickles the dataset)
        return state

    def __len__(self) -> int:
        return len(self.index)

    def clip_ids(self, split: str | None = None) -> list[str]:
        """Clip ids in index order, optionally of one split."""
        mask = self.index.in_splits(None if split is None else {split})
        return [self.index.clip_id[i] for i in np.flatnonzero(mask).tolist()]

    def row(self, clip: str | IndexRow) -> IndexRow:
        """The clip's ``index.csv`` row (given its id, or the row itself)."""
        if isinstance(clip, IndexRow):
            return clip
        try:
            return self.index[self.index.position(clip)]
        except KeyError:
            raise KeyError(f"clip {clip!r} is not in the cache") from None

    def _file(self, shard: int) -> h5py.File:
        if os.getpid() != self._pid:  # a forked worker: never reuse the parent's HDF5 handles
            self._files, self._pid = OrderedDict(), os.getpid()
        f = self._files.get(shard)
        if f is None:
            with read_errors(shard_path(self.dir, shard)):
                f = self._files[shard] = h5py.File(shard_path(self.dir, shard), "r")
            if len(self._files) > MAX_OPEN:
                self._files.popitem(last=False)[1].close()
        self._files.move_to_end(shard)
        return f

    def info(self, clip_id: str) -> dict[str, Any]:
        """What decoding found (codecs, source size and rate, rotation, ...)."""
        r = self.row(clip_id)
        with read_errors(shard_path(self.dir, r.shard)):
            return read_json_dataset(self._file(r.shard), "clips_json")[r.row]["info"]

    def frames(self, clip_id: str | IndexRow, indices: list[int] | np.ndarray | None = None) -> np.ndarray:
        """Decoded frames uint8 ``[T, H, W, 3]`` (all, or the given slot indices; repeats allowed)."""
        r = self.row(clip_id)
        if not r.has_video:
            raise ValueError(f"clip {r.clip_id!r} has no video")
        idx = np.arange(r.n_frames) if indices is None else np.asarray(indices, dtype=np.int64)
        f = self._file(r.shard)
        images: dict[int, np.ndarray] = {}
        with read_errors(shard_path(self.dir, r.shard)):
            spans = f["frame_spans"][r.frame_offset:r.frame_offset + r.n_frames].tolist()  # [T] (offset, length)
            jpeg = f["jpeg"]
            for i in idx.tolist():
                start, length = spans[i]
                if start not in images:  # a held frame is stored (and decoded) once
                    images[start] = decode_jpeg(jpeg[start:start + length])
        return np.stack([images[spans[i][0]] for i in idx.tolist()])

    def logmel(self, clip_id: str | IndexRow) -> np.ndarray:
        """float16 ``[F, A]`` log-mel."""
        r = self.row(clip_id)
        if not r.has_audio:
            raise ValueError(f"clip {r.clip_id!r} has no audio")
        with read_errors(shard_path(self.dir, r.shard)):
            return self._file(r.shard)["logmel"][:, r.mel_offset:r.mel_offset + r.audio_frames]

    def load(self, clip_id: str) -> dict[str, Any]:
        """Everything about one clip: ``frames`` uint8 [T, H, W, 3] and ``logmel`` float16 [F, A] (None
        for a missing modality), ``labels`` (indices), ``label_names``, flags, ``duration_s``, ``fps``."""
        r = self.row(clip_id)
        return {"clip_id": clip_id, "path": r.path, "split": r.split, "labels": list(r.labels),
                "label_names": [self.label_names[i] for i in r.labels], "has_audio": r.has_audio,
                "has_video": r.has_video, "duration_s": r.duration_s, "fps": self.settings["fps"],
                "sample_rate": self.settings["sample_rate"], "hop_length": self.settings["hop_length"],
                "frames": self.frames(clip_id) if r.has_video else None,
                "logmel": self.logmel(clip_id) if r.has_audio else None, "info": self.info(clip_id)}

    def close(self) -> None:
        """Close this process's open shard files."""
        for f in self._files.values():
            f.close()
        self._files = OrderedDict()


def open_cache(cache_dir: str | Path) -> Cache:
    """Open a finished cache folder for reading."""
    return Cache(cache_dir)

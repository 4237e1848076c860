"""The HDF5 cache: shard layout, atomic shard writer, and ``open_cache`` for reading.

A cache folder holds::

    cache.json           settings + fingerprint, label names, the plan (clip and shard counts)
    shards/shard-NNNNN.h5   written as shard-NNNNN.h5.tmp and renamed when complete
    index.csv            one row per cached clip (written by ``zorro_cli.data.index.finalize``)
    failures.csv         path,reason for every input not cached
    summary.json         counts, timings, settings, log-mel statistics
    plan_failures.csv    manifest rows that never reached a worker (merged into failures.csv)

Shard layout (schema 1), legend: T frames of a clip, F mel bins, A audio frames::

    jpeg          uint8 [bytes]        JPEG images back to back (a held frame stored once)
    frame_spans   int64 [sum T, 2]     per video slot: byte offset and length in ``jpeg``
    logmel        float16 [F, sum A]   log-mel, clip after clip along time
    clips_json    uint8 [bytes]        JSON list: per clip its record and offsets into the two arrays
    failures_json uint8 [bytes]        JSON list of [path, reason]
    mel_sum, mel_sumsq  float64 [F]    moments of the shard's stored log-mel (for dataset mean/std)
    attrs: schema, fingerprint, plan (this shard's clip list hash), shard, num_shards, mel_count
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, overload

import h5py
import numpy as np

from ..errors import UsageError
from .pipeline import ClipFailure, ClipResult, decode_jpeg

SCHEMA = 1
SHARDS = "shards"
INDEX_FIELDS = ("clip_id", "path", "split", "labels", "label_ids", "shard", "row", "has_audio", "has_video",
                "duration_s", "n_frames", "audio_frames", "width", "height", "frame_offset", "mel_offset")
MAX_OPEN = 64  # open shard files per process (least recently used closed first)


class CacheError(UsageError):
    """A cache folder that cannot be used (missing, other settings, incomplete); one-line message."""


def fingerprint(obj: Any) -> str:
    """Short sha256 of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_path(cache_dir: Path, k: int) -> Path:
    return cache_dir / SHARDS / f"shard-{k:05d}.h5"


def _json_bytes(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, separators=(",", ":")).encode(), dtype=np.uint8)


def read_json_dataset(f: h5py.File, name: str) -> Any:
    return json.loads(f[name][()].tobytes().decode())


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file + rename (never a half-written file)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class ShardWriter:
    """Writes one shard under a temporary name; ``close()`` renames it into place (atomic on POSIX)."""

    def __init__(self, cache_dir: Path, k: int, attrs: dict[str, Any], n_mels: int) -> None:
        self.final = shard_path(cache_dir, k)
        self.tmp = self.final.with_name(self.final.name + ".tmp")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.f = h5py.File(self.tmp, "w")
        self.f.attrs.update({"schema": SCHEMA, **attrs})
        self.jpeg = self.f.create_dataset("jpeg", (0,), dtype=np.uint8, maxshape=(None,), chunks=(1 << 16,))
        self.spans = self.f.create_dataset("frame_spans", (0, 2), dtype=np.int64, maxshape=(None, 2),
                                           chunks=(1024, 2))
        self.mel = self.f.create_dataset("logmel", (n_mels, 0), dtype=np.float16, maxshape=(n_mels, None),
                                         chunks=(n_mels, 1024))
        self.records: list[dict[str, Any]] = []
        self.failures: list[list[str]] = []
        self.sum = np.zeros(n_mels, np.float64)
        self.sumsq = np.zeros(n_mels, np.float64)
        self.count = 0

    def add(self, item: ClipResult | ClipFailure) -> None:
        """Append a cached clip (arrays + record) or a failure."""
        if isinstance(item, ClipFailure):
            self.failures.append([item.task.path, item.reason])
            return
        t = item.task
        rec: dict[str, Any] = {"clip_id": t.clip_id, "path": t.path, "split": t.split, "labels": list(t.labels),
                               "has_audio": item.logmel is not None, "has_video": item.frames is not None,
                               "duration_s": item.duration_s, "info": item.info,
                               "frame_offset": self.spans.shape[0], "n_frames": 0,
                               "mel_offset": self.mel.shape[1], "audio_frames": 0, "width": 0, "height": 0}
        if item.frames is not None:
            self._add_frames(item.frames)
            rec["n_frames"] = len(item.frames)
            rec["width"], rec["height"] = item.info.get("size", [0, 0])
        if item.logmel is not None:
            a = item.logmel.shape[1]
            self.mel.resize((self.mel.shape[0], rec["mel_offset"] + a))
            self.mel[:, rec["mel_offset"]:] = item.logmel
            rec["audio_frames"] = a
            s, sq, c = item.moments  # type: ignore[misc]
            self.sum += s
            self.sumsq += sq
            self.count += c
        self.records.append(rec)

    def _add_frames(self, frames: list[bytes]) -> None:
        """Append JPEG blobs; a held frame (same bytes object as the previous slot) is stored once."""
        byte0, n0 = self.jpeg.shape[0], self.spans.shape[0]
        spans, blobs, pos, prev = [], [], byte0, None
        for blob in frames:
            if blob is not prev:
                blobs.append(blob)
                pos += len(blob)
                prev = blob
            spans.append((pos - len(blob), len(blob)))
        data = np.frombuffer(b"".join(blobs), np.uint8)
        self.jpeg.resize((byte0 + len(data),))
        self.jpeg[byte0:] = data
        self.spans.resize((n0 + len(spans), 2))
        self.spans[n0:] = np.asarray(spans, np.int64)

    def close(self) -> None:
        """Write the records and moments, close, and rename the shard into place."""
        self.f.create_dataset("clips_json", data=_json_bytes(self.records))
        self.f.create_dataset("failures_json", data=_json_bytes(self.failures))
        self.f.create_dataset("mel_sum", data=self.sum)
        self.f.create_dataset("mel_sumsq", data=self.sumsq)
        self.f.attrs["mel_count"] = self.count
        self.f.attrs["n_clips"] = len(self.records)
        self.f.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


def shard_done(path: Path, fp: str, plan: str) -> bool:
    """Whether a finished shard at ``path`` was made with fingerprint ``fp`` for clip plan ``plan``."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("fingerprint") == fp and f.attrs.get("plan") == plan and "clips_json" in f
    except (OSError, KeyError):
        return False


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
        if not (self.dir / "index.csv").is_file():
            raise CacheError(f"{self.dir} is not a finished cache (no index.csv)")
        meta = json.loads((self.dir / "cache.json").read_text())
        summary = json.loads((self.dir / "summary.json").read_text())
        self.settings: dict[str, Any] = meta["settings"]
        self.fingerprint: str = meta["fingerprint"]
        self.label_names: list[str] = meta["label_names"]
        self.multilabel: bool = meta["multilabel"]
        self.stats: dict[str, Any] = summary.get("stats", {})
        self.index: ClipIndex = read_index(self.dir / "index.csv")
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
            f = self._files[shard] = h5py.File(shard_path(self.dir, shard), "r")
            if len(self._files) > MAX_OPEN:
                self._files.popitem(last=False)[1].close()
        self._files.move_to_end(shard)
        return f

    def info(self, clip_id: str) -> dict[str, Any]:
        """What decoding found (codecs, source size and rate, rotation, ...)."""
        r = self.row(clip_id)
        return read_json_dataset(self._file(r.shard), "clips_json")[r.row]["info"]

    def frames(self, clip_id: str | IndexRow, indices: list[int] | np.ndarray | None = None) -> np.ndarray:
        """Decoded frames uint8 ``[T, H, W, 3]`` (all, or the given slot indices; repeats allowed)."""
        r = self.row(clip_id)
        if not r.has_video:
            raise ValueError(f"clip {r.clip_id!r} has no video")
        idx = np.arange(r.n_frames) if indices is None else np.asarray(indices, dtype=np.int64)
        f = self._file(r.shard)
        spans = f["frame_spans"][r.frame_offset:r.frame_offset + r.n_frames].tolist()  # [T] (byte offset, length)
        jpeg = f["jpeg"]
        images: dict[int, np.ndarray] = {}
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

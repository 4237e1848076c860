"""Writing shards: ``ShardWriter`` fills one shard file (layout in ``layout.py``) under a temporary name
and renames it into place when complete; ``shard_done`` says whether a finished shard can be kept."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import temporary_name
from .folder import ensure_space
from .layout import SCHEMA, json_bytes, shard_path
from .pipeline import ClipFailure, ClipResult


class ShardWriter:
    """Writes one shard under a temporary name; ``close()`` renames it into place (atomic on POSIX)."""

    def __init__(self, cache_dir: Path, k: int, attrs: dict[str, Any], n_mels: int) -> None:
        self.final = shard_path(cache_dir, k)
        self.tmp = temporary_name(self.final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # libver "latest": checksummed metadata (superblock v3, object headers v2); with every dataset
        # chunked under a Fletcher-32 checksum, HDF5 verifies each chunk it reads (see read_errors)
        self.f = h5py.File(self.tmp, "w", libver="latest")
        self.f.attrs.update({"schema": SCHEMA, **attrs})
        self.jpeg = self.f.create_dataset("jpeg", (0,), dtype=np.uint8, maxshape=(None,), chunks=(1 << 16,),
                                          fletcher32=True)
        self.spans = self.f.create_dataset("frame_spans", (0, 2), dtype=np.int64, maxshape=(None, 2),
                                           chunks=(1024, 2), fletcher32=True)
        self.mel = self.f.create_dataset("logmel", (n_mels, 0), dtype=np.float16, maxshape=(n_mels, None),
                                         chunks=(n_mels, 1024), fletcher32=True)
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
        size = sum(map(len, item.frames or [])) + (0 if item.logmel is None else item.logmel.nbytes)
        ensure_space(self.final.parent, size)  # before HDF5 can run into a full disk (see folder.py)
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
            assert item.moments is not None  # set with the log-mel
            s, sq, c = item.moments
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
        for name, data in (("clips_json", json_bytes(self.records)), ("failures_json", json_bytes(self.failures)),
                           ("mel_sum", self.sum), ("mel_sumsq", self.sumsq)):
            self.f.create_dataset(name, data=data, chunks=True, fletcher32=True)
        self.f.attrs["mel_count"] = self.count
        self.f.attrs["n_clips"] = len(self.records)
        self.f.close()
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        """Drop the unfinished shard (its file may not close cleanly after a failed write: disk full)."""
        with contextlib.suppress(Exception):
            self.f.close()
        self.tmp.unlink(missing_ok=True)


def shard_done(path: Path, fp: str, plan: str) -> bool:
    """Whether a finished shard at ``path`` was made with fingerprint ``fp`` for clip plan ``plan``."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("fingerprint") == fp and f.attrs.get("plan") == plan and "clips_json" in f
    except (OSError, KeyError):
        return False

"""The cache layout, in one place: file names, the shard naming, the HDF5 datasets of a shard.

Reader (``cache.py``) and writers (``shards.py``, ``index.py``, ``build.py``) all take names from here;
none of them spells a path or parses a shard name itself. A cache folder holds::

    cache.json           settings + fingerprint, label names, the plan (clip and shard counts)
    shards/shard-NNNNN.h5   written under a temporary name (zorro_cli.atomic) and renamed when complete
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

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import is_temporary

SCHEMA = 1
SHARDS = "shards"
META = "cache.json"
INDEX = "index.csv"
FAILURES = "failures.csv"
SUMMARY = "summary.json"
PLAN_FAILURES = "plan_failures.csv"
INDEX_FIELDS = ("clip_id", "path", "split", "labels", "label_ids", "shard", "row", "has_audio", "has_video",
                "duration_s", "n_frames", "audio_frames", "width", "height", "frame_offset", "mel_offset")
_SHARD_NAME = re.compile(r"\.?shard-(\d+)\.h5(\.tmp-.*)?")


def fingerprint(obj: Any) -> str:
    """Short sha256 of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_path(cache_dir: Path, k: int) -> Path:
    """Where shard ``k`` of a cache lives once finished."""
    return cache_dir / SHARDS / f"shard-{k:05d}.h5"


def finished_shards(cache_dir: Path) -> list[Path]:
    """The finished shard files of a cache (or part) folder, in shard order."""
    return sorted(p for p in (cache_dir / SHARDS).glob("shard-*.h5") if _SHARD_NAME.fullmatch(p.name))


def shard_number(path: Path) -> int | None:
    """``k`` of a shard file, finished or temporary; None for any other file."""
    m = _SHARD_NAME.fullmatch(path.name)
    if m is None or (m.group(2) is not None) != is_temporary(path):
        return None
    return int(m.group(1))


def json_bytes(obj: Any) -> np.ndarray:
    """``obj`` as a uint8 array of compact JSON (how records are stored in a shard)."""
    return np.frombuffer(json.dumps(obj, separators=(",", ":")).encode(), dtype=np.uint8)


def read_json_dataset(f: h5py.File, name: str) -> Any:
    """The JSON stored by :func:`json_bytes` in dataset ``name``."""
    return json.loads(f[name][()].tobytes().decode())

"""Finish a cache: index.csv, failures.csv and summary.json from the shards; merge ``--shard I/N`` parts.

Everything is derived from the shard files in shard order, so a run killed and resumed, a run with
other ``--workers``, and N parts merged all give the same index. Rows are streamed to disk: memory
does not grow with the number of clips.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_path, copy_atomic, write_text_atomic
from .cache import CacheError, read_errors
from .features import finish_moments
from .folder import check_out, writing_into
from .layout import (
    FAILURES,
    INDEX,
    INDEX_FIELDS,
    META,
    PLAN_FAILURES,
    SUMMARY,
    finished_shards,
    read_json_dataset,
    shard_path,
)


def read_meta(cache_dir: Path) -> dict[str, Any]:
    """``cache.json`` of a cache (or part) folder."""
    path = cache_dir / META
    if not path.is_file():
        raise CacheError(f"{cache_dir} holds no {META} (not a preprocessing output)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheError(f"{path}: cannot be read ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(meta, dict):
        raise CacheError(f"{path}: expected a JSON object")
    return meta


def write_failures(path: Path, rows: list[tuple[str, str]] | list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "reason"])
        w.writerows(rows)


def _index_row(k: int, i: int, rec: dict[str, Any], names: list[str]) -> list[Any]:
    return [rec["clip_id"], rec["path"], rec["split"], ";".join(names[j] for j in rec["labels"]),
            ";".join(str(j) for j in rec["labels"]), k, i, int(rec["has_audio"]), int(rec["has_video"]),
            f"{rec['duration_s']:.6f}", rec["n_frames"], rec["audio_frames"], rec["width"], rec["height"],
            rec["frame_offset"], rec["mel_offset"]]


def missing_shards(cache_dir: Path, num_shards: int) -> list[int]:
    return [k for k in range(num_shards) if not shard_path(cache_dir, k).is_file()]


def cached_in(cache_dir: Path, shards: list[int]) -> int:
    """Clips cached in the given (finished) shards."""
    total = 0
    for k in shards:
        with h5py.File(shard_path(cache_dir, k), "r") as f:
            total += int(f.attrs["n_clips"])
    return total


def finalize(cache_dir: Path, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Write ``index.csv``, ``failures.csv`` and ``summary.json`` from a complete set of shards."""
    meta = read_meta(cache_dir)
    plan = meta["plan"]
    missing = missing_shards(cache_dir, plan["num_shards"])
    if missing:
        shown = ", ".join(str(k) for k in missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise CacheError(f"{len(missing)} of {plan['num_shards']} shards missing in {cache_dir} ({shown}); "
                         "run the missing --shard parts first")
    n_mels = meta["settings"]["n_mels"]
    total, total_sq, count = np.zeros(n_mels), np.zeros(n_mels), 0
    counts = {"cached": 0, "failed": 0, "audio": 0, "video": 0, "both": 0}
    with atomic_path(cache_dir / INDEX) as idx_tmp, atomic_path(cache_dir / FAILURES) as fail_tmp:
        shutil.copyfile(cache_dir / PLAN_FAILURES, fail_tmp)
        with idx_tmp.open("w", newline="", encoding="utf-8") as ih, \
                fail_tmp.open("a", newline="", encoding="utf-8") as fh:
            index, failures = csv.writer(ih), csv.writer(fh)
            index.writerow(INDEX_FIELDS)
            for k in range(plan["num_shards"]):
                with read_errors(shard_path(cache_dir, k)), h5py.File(shard_path(cache_dir, k), "r") as f:
                    if f.attrs["fingerprint"] != meta["fingerprint"]:
                        raise CacheError(f"{shard_path(cache_dir, k)} was made with other settings")
                    for i, rec in enumerate(read_json_dataset(f, "clips_json")):
                        index.writerow(_index_row(k, i, rec, meta["label_names"]))
                        counts["cached"] += 1
                        counts["audio"] += rec["has_audio"]
                        counts["video"] += rec["has_video"]
                        counts["both"] += rec["has_audio"] and rec["has_video"]
                    shard_failures = read_json_dataset(f, "failures_json")
                    failures.writerows(shard_failures)
                    counts["failed"] += len(shard_failures)
                    total += f["mel_sum"][()]
                    total_sq += f["mel_sumsq"][()]
                    count += int(f.attrs["mel_count"])
    counts["failed"] += plan["plan_failures"]
    summary = {"counts": {"rows": plan["rows"], **counts}, "settings": meta["settings"],
               "fingerprint": meta["fingerprint"], "format": meta["format"], "shards": plan["num_shards"],
               "stats": finish_moments(total, total_sq, count), "timings": timings or {},
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_text_atomic(cache_dir / SUMMARY, json.dumps(summary, indent=1))
    return summary


def merge_parts(parts: list[Path], out: Path) -> dict[str, Any]:
    """Gather the shards of ``--shard I/N`` part folders into ``out`` and finalize it.

    Parts must share the fingerprint and plan; a part folder equal to ``out`` is used in place. Shards
    are hard-linked when possible, else copied (temporary name, then rename).
    """
    check_out(out)
    metas = [(p, read_meta(p)) for p in parts] or [(out, read_meta(out))]
    first = metas[0][1]
    for p, m in metas[1:]:
        if (m["fingerprint"], m["plan"]["fingerprint"]) != (first["fingerprint"], first["plan"]["fingerprint"]):
            raise CacheError(f"{p} was made with other settings or another manifest than {metas[0][0]}")
    with writing_into(out):
        return _merge_into(metas, out)


def _merge_into(metas: list[tuple[Path, dict[str, Any]]], out: Path) -> dict[str, Any]:
    """``merge_parts`` once ``out`` is locked: link or copy the parts' shards in, then finalize."""
    first = metas[0][1]
    if (out / META).is_file():
        mine = read_meta(out)
        if (mine["fingerprint"], mine["plan"]["fingerprint"]) != (first["fingerprint"], first["plan"]["fingerprint"]):
            raise CacheError(f"{out} already holds a cache made with other settings")
    src = metas[0][0]
    if src.resolve() != out.resolve():
        copy_atomic(src / PLAN_FAILURES, out / PLAN_FAILURES)
        write_text_atomic(out / META, (src / META).read_text())
    for p, _ in metas:
        if p.resolve() == out.resolve():
            continue
        for shard in finished_shards(p):
            dst = out / shard.relative_to(p)
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                copy_atomic(shard, dst, link=True)
    return finalize(out)

"""Finish a cache: index.csv, failures.csv and summary.json from the shards; merge ``--shard I/N`` parts.

Everything is derived from the shard files in shard order, so a run killed and resumed, a run with
other ``--workers``, and N parts merged all give the same index. Rows are streamed to disk: memory
does not grow with the number of clips.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .cache import INDEX_FIELDS, CacheError, read_json_dataset, shard_path, write_text_atomic
from .features import finish_moments

PLAN_FAILURES = "plan_failures.csv"


def read_meta(cache_dir: Path) -> dict[str, Any]:
    """``cache.json`` of a cache (or part) folder."""
    path = cache_dir / "cache.json"
    if not path.is_file():
        raise CacheError(f"{cache_dir} holds no cache.json (not a preprocessing output)")
    return json.loads(path.read_text())


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
    idx_tmp, fail_tmp = (cache_dir / f"{name}.tmp-{os.getpid()}" for name in ("index.csv", "failures.csv"))
    shutil.copyfile(cache_dir / PLAN_FAILURES, fail_tmp)
    with idx_tmp.open("w", newline="", encoding="utf-8") as ih, fail_tmp.open("a", newline="", encoding="utf-8") as fh:
        index, failures = csv.writer(ih), csv.writer(fh)
        index.writerow(INDEX_FIELDS)
        for k in range(plan["num_shards"]):
            with h5py.File(shard_path(cache_dir, k), "r") as f:
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
    os.replace(idx_tmp, cache_dir / "index.csv")
    os.replace(fail_tmp, cache_dir / "failures.csv")
    summary = {"counts": {"rows": plan["rows"], **counts}, "settings": meta["settings"],
               "fingerprint": meta["fingerprint"], "format": meta["format"], "shards": plan["num_shards"],
               "stats": finish_moments(total, total_sq, count), "timings": timings or {},
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_text_atomic(cache_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def merge_parts(parts: list[Path], out: Path) -> dict[str, Any]:
    """Gather the shards of ``--shard I/N`` part folders into ``out`` and finalize it.

    Parts must share the fingerprint and plan; a part folder equal to ``out`` is used in place. Shards
    are hard-linked when possible, else copied (temporary name, then rename).
    """
    metas = [(p, read_meta(p)) for p in parts] or [(out, read_meta(out))]
    first = metas[0][1]
    for p, m in metas[1:]:
        if (m["fingerprint"], m["plan"]["fingerprint"]) != (first["fingerprint"], first["plan"]["fingerprint"]):
            raise CacheError(f"{p} was made with other settings or another manifest than {metas[0][0]}")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "cache.json").is_file():
        mine = read_meta(out)
        if (mine["fingerprint"], mine["plan"]["fingerprint"]) != (first["fingerprint"], first["plan"]["fingerprint"]):
            raise CacheError(f"{out} already holds a cache made with other settings")
    src = metas[0][0]
    if src.resolve() != out.resolve():
        shutil.copyfile(src / PLAN_FAILURES, out / PLAN_FAILURES)
        write_text_atomic(out / "cache.json", (src / "cache.json").read_text())
    for p, _ in metas:
        if p.resolve() == out.resolve():
            continue
        for shard in sorted((p / "shards").glob("shard-*.h5")):
            _link_or_copy(shard, out / "shards" / shard.name)
    return finalize(out)


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)

"""The cache builder behind ``zorro preprocess``: a manifest of raw media -> a sharded HDF5 cache + failure report (resumable).

Flow: read the manifest -> find each row's media -> plan clips into shards of ``shard_size`` in
manifest order -> decode the clips of this part's unfinished shards in worker processes -> write each
shard under a temporary name and rename it when complete -> once every shard exists, write
``index.csv``, ``failures.csv`` and ``summary.json`` (``zorro_cli.data.index.finalize``).

A rerun with the same settings and manifest skips finished shards (resume after a kill); other
settings are refused unless ``rebuild``. ``shard=(I, N)`` processes shards ``k`` with ``k % N == I``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import atomic_path, leftovers, write_text_atomic
from ..errors import UsageError
from .config import PreprocessConfig
from .folder import OUTPUTS, check_out, remove_own_files, writing_into
from .index import cached_in, finalize, missing_shards, read_meta, write_failures
from .layout import (
    META,
    PLAN_FAILURES,
    SCHEMA,
    SHARDS,
    fingerprint,
    shard_path,
)
from .manifests import FORMATS, ManifestError, read_manifest
from .media import ClipTask, plan_clips
from .parallel import process_all
from .pipeline import ClipFailure
from .progress import ClipProgress
from .shards import ShardWriter, shard_done


@dataclass(frozen=True)
class Job:
    """What to preprocess, besides the recipe's settings."""

    manifests: tuple[Path, ...]
    fmt: str
    media_root: Path
    out: Path
    workers: int = 1
    shard: tuple[int, int] = (0, 1)
    labels: Path | None = None
    rebuild: bool = False
    plain: bool | None = None  # progress as log lines (None: when stderr is not a terminal)


def _check_job(job: Job) -> None:
    if job.fmt not in FORMATS:
        raise UsageError(f"--format: unknown format {job.fmt!r}; expected one of {', '.join(FORMATS)}")
    if not job.manifests:
        raise UsageError("--manifest is required")
    for m in job.manifests:
        if not m.is_file():
            raise UsageError(f"--manifest: no such file {m}")
    if not job.media_root.is_dir():
        raise UsageError(f"--media-root: no such folder {job.media_root}")
    if job.labels is not None and not job.labels.is_file():
        raise UsageError(f"--labels: no such file {job.labels}")
    if job.workers < 0:
        raise UsageError(f"--workers: expected >= 0, got {job.workers}")


def _task_key(t: ClipTask) -> list[Any]:
    return [t.clip_id, t.path, list(t.labels), t.split, t.start, t.end]


def _settings_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:4])


def _prepare_out(job: Job, meta: dict[str, Any]) -> None:
    """Refuse a cache made otherwise (unless rebuild), then write cache.json. ``--out`` was checked to be
    new, empty or a cache (``folder.check_out``); ``--rebuild`` deletes only the cache's own files."""
    out = job.out
    if (out / META).is_file() and not job.rebuild:
        old = read_meta(out)
        if old["fingerprint"] != meta["fingerprint"]:
            diff = _settings_diff(old["settings"], meta["settings"])
            raise UsageError(f"{out} holds a cache made with other settings ({diff}); pass --rebuild to replace it")
        if old["plan"]["fingerprint"] != meta["plan"]["fingerprint"]:
            raise UsageError(f"{out} holds a cache of another manifest ({old['plan']['clips']} clips planned, now "
                             f"{meta['plan']['clips']}); pass --rebuild to replace it")
    if job.rebuild:  # with --shard I/N, other parts may share this folder: only this part's shards go
        remove_own_files(out, job.shard)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / META, json.dumps(meta, indent=1))  # first: a folder with shards has a cache.json
    (out / SHARDS).mkdir(exist_ok=True)


def plan_job(cfg: PreprocessConfig, job: Job) -> tuple[list[ClipTask], list[tuple[str, str]], dict[str, Any]]:
    """Tasks, plan failures and the cache.json metadata of a job (no media decoded)."""
    _check_job(job)
    try:
        manifest = read_manifest(job.fmt, list(job.manifests), job.labels)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    tasks, failures = plan_clips(manifest, job.fmt, job.media_root, cfg.media_patterns, cfg.clip_window)
    settings = cfg.cache_settings()
    plan = {"rows": len(manifest.rows) + len(manifest.problems), "clips": len(tasks),
            "plan_failures": len(failures), "shard_size": cfg.shard_size,
            "num_shards": math.ceil(len(tasks) / cfg.shard_size),
            "fingerprint": fingerprint([[_task_key(t) for t in tasks], failures, manifest.label_names])}
    meta = {"schema": SCHEMA, "fingerprint": fingerprint({"schema": SCHEMA, "format": job.fmt, "settings": settings}),
            "settings": settings, "format": job.fmt, "label_names": manifest.label_names,
            "multilabel": manifest.multilabel, "plan": plan,
            "made_by": {"argv": sys.argv, "versions": _versions()}}
    return tasks, failures, meta


def _versions() -> dict[str, str]:
    """The versions of what made the cache's bytes (decoder, resampler, JPEG, FFT, HDF5)."""
    import av
    import h5py
    import numpy
    import simplejpeg

    return {"zorro": __version__, "python": sys.version.split()[0], "av": av.__version__,
            "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
            "simplejpeg": simplejpeg.__version__, "h5py": h5py.__version__, "numpy": numpy.__version__}


def preprocess(cfg: PreprocessConfig, job: Job) -> dict[str, Any]:
    """Run a preprocessing job (or this ``--shard`` part of it); returns the summary.

    Raises ``UsageError`` for bad inputs and ``CacheError`` for a cache that cannot be finished.
    """
    t0 = time.monotonic()
    tasks, plan_failures, meta = plan_job(cfg, job)
    check_out(job.out)
    with writing_into(job.out, job.shard):
        return _build(cfg, job, tasks, plan_failures, meta, t0)


def _build(cfg: PreprocessConfig, job: Job, tasks: list[ClipTask], plan_failures: list[tuple[str, str]],
           meta: dict[str, Any], t0: float) -> dict[str, Any]:
    """``preprocess`` once the folder is ours: prepare it, write this part's shards, finish the cache."""
    _prepare_out(job, meta)
    out, (part, parts) = job.out, job.shard
    with atomic_path(out / PLAN_FAILURES) as tmp:
        write_failures(tmp, plan_failures)
    size, num_shards = cfg.shard_size, meta["plan"]["num_shards"]
    mine = [k for k in range(num_shards) if k % parts == part]
    # what each shard holds (a part also checks the other parts' shards before finishing the cache)
    plans = {k: fingerprint([_task_key(t) for t in tasks[k * size:(k + 1) * size]]) for k in range(num_shards)}
    _remove_leftovers(out, mine, whole=parts == 1)
    todo = [k for k in mine if not shard_done(shard_path(out, k), meta["fingerprint"], plans[k])]
    t_plan = time.monotonic() - t0
    processed = _write_shards(cfg, job, tasks, todo, plans, meta)
    t_proc = time.monotonic() - t0 - t_plan
    timings = {"plan_s": round(t_plan, 3), "process_s": round(t_proc, 3), "clips_processed": processed,
               "clips_per_s": round(processed / max(t_proc, 1e-9), 2), "workers": job.workers,
               "shards_skipped": len(mine) - len(todo)}
    if missing_shards(out, num_shards) or not all(  # another part's shards may be stale
            shard_done(shard_path(out, k), meta["fingerprint"], plans[k]) for k in range(num_shards) if k % parts != part):
        return {"part": f"{part}/{parts}", "complete": False, "timings": timings,
                "counts": {"cached": cached_in(out, mine)}, "shards": num_shards}
    return {**finalize(out, timings), "complete": True}


def _remove_leftovers(out: Path, shards: list[int], whole: bool) -> None:
    """Delete temporary files a killed run left: this part's shards, and (whole runs only, since parts
    may share the folder) the cache files being written. Never a file the cache did not write."""
    for k in shards:
        for tmp in leftovers(shard_path(out, k)):
            tmp.unlink(missing_ok=True)
    if whole:
        for name in OUTPUTS:
            for tmp in leftovers(out / name):
                tmp.unlink(missing_ok=True)


def _write_shards(cfg: PreprocessConfig, job: Job, tasks: list[ClipTask], todo: list[int],
                  plans: dict[int, str], meta: dict[str, Any]) -> int:
    """Decode the clips of shards ``todo`` (in order) and write each shard; returns clips processed."""
    size, num_shards = cfg.shard_size, meta["plan"]["num_shards"]
    stream = (t for k in todo for t in tasks[k * size:(k + 1) * size])
    total = sum(len(tasks[k * size:(k + 1) * size]) for k in todo)
    results = process_all(stream, cfg, job.workers)
    done = 0
    with ClipProgress(total, plain=job.plain) as progress:
        for k in todo:
            attrs = {"fingerprint": meta["fingerprint"], "plan": plans[k], "shard": k, "num_shards": num_shards}
            writer = ShardWriter(job.out, k, attrs, cfg.n_mels)
            try:
                for _ in tasks[k * size:(k + 1) * size]:
                    item = next(results)
                    writer.add(item)
                    progress.advance(ok=not isinstance(item, ClipFailure))
                    done += 1
                writer.close()
            except BaseException:
                writer.abort()
                results.close()
                raise
    return done

"""Ordered parallel map: results in task order, a worker killed mid-task becomes a failure, the run goes on."""

from __future__ import annotations

import os

from zorro_cli.data.config import PreprocessConfig
from zorro_cli.data.media import ClipTask
from zorro_cli.data.parallel import process_all
from zorro_cli.data.pipeline import ClipFailure, ClipResult


def crash_on_c3(task: ClipTask) -> ClipResult | ClipFailure:
    """Stands in for a decoder that segfaults on one file: the worker process dies."""
    if task.clip_id == "c3":
        os._exit(139)
    return ClipResult(task, None, None, float(task.clip_id[1:]))


def test_worker_crash_is_contained():
    tasks = [ClipTask(f"c{i}", f"c{i}.mp4", "/none", (), "train") for i in range(8)]
    out = list(process_all(tasks, PreprocessConfig(), workers=2, fn=crash_on_c3))
    assert [r.task.clip_id for r in out] == [t.clip_id for t in tasks]
    failed = [r for r in out if isinstance(r, ClipFailure)]
    assert [(f.task.clip_id, f.reason) for f in failed] == [
        ("c3", "the worker process died twice on this clip (decoder crash, or stuck in one decoder call for 1205 s)")]
    assert [r.duration_s for r in out if isinstance(r, ClipResult)] == [0, 1, 2, 4, 5, 6, 7]


def hang_on_c2(task: ClipTask) -> ClipResult | ClipFailure:
    """Stands in for a decoder stuck inside one C call (here a regular expression that backtracks for
    hours; no ``clip_timeout_s`` alarm is armed around it)."""
    if task.clip_id == "c2":
        import re

        re.match(r"(a+)+$", "a" * 64 + "b")  # hours of backtracking without returning to Python
    return ClipResult(task, None, None, float(task.clip_id[1:]))


def test_worker_stuck_in_one_call_is_ended_by_the_watchdog():
    """``clip_timeout_s`` cannot interrupt a call that never returns to Python; the watchdog ends the
    worker after 2 x clip_timeout_s + 5 s and the clip becomes a failure, the others are kept."""
    tasks = [ClipTask(f"c{i}", f"c{i}.mp4", "/none", (), "train") for i in range(5)]
    cfg = PreprocessConfig(clip_timeout_s=0.25)  # watchdog after 5.5 s
    out = list(process_all(tasks, cfg, workers=2, fn=hang_on_c2))
    assert [r.task.clip_id for r in out] == [t.clip_id for t in tasks]
    failed = [(r.task.clip_id, r.reason) for r in out if isinstance(r, ClipFailure)]
    assert failed == [("c2", "the worker process died twice on this clip (decoder crash, or stuck in one "
                             "decoder call for 5.5 s)")]


def clip_and_worker_state(task: ClipTask) -> ClipResult | ClipFailure:
    """The real ``process_clip``, then what the worker process has loaded after it, in ``info``."""
    import sys

    from zorro_cli.data import parallel

    result = parallel._run(task)
    assert isinstance(result, ClipResult), result
    result.info["worker"] = {"torch": "torch" in sys.modules, "torchaudio": "torchaudio" in sys.modules,
                             "pid": os.getpid(), "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    return result


def test_decode_workers_run_without_torch(tmp_path):
    """A decode worker computes the log-mel and JPEG frames without torch (its fork server would import
    it for ~1 s before the first clip), with one BLAS thread; the moments come back with the result."""
    import numpy as np

    from zorro_cli.data.features import mel_moments
    from zorro_cli.data.synth import render_audio, render_frames, write_clip

    rng = np.random.default_rng(0)
    write_clip(tmp_path / "a.mp4", render_frames(1, 10, 64, 80, rng), 10, render_audio(1, 1.0, 16000, rng), "mp4")
    tasks = [ClipTask(f"c{i}", "a.mp4", str(tmp_path / "a.mp4"), (), "train") for i in range(2)]
    environ = dict(os.environ)
    out = list(process_all(tasks, PreprocessConfig(), workers=1, fn=clip_and_worker_state))
    assert dict(os.environ) == environ  # the one-thread settings were for the fork server only
    worker = out[0].info["worker"]
    assert worker["pid"] != os.getpid()
    assert (worker["torch"], worker["torchaudio"], worker["blas_threads"]) == (False, False, "1")
    r = out[1]
    assert isinstance(r, ClipResult) and r.logmel is not None and r.moments is not None
    assert all(np.array_equal(a, b) for a, b in zip(r.moments[:2], mel_moments(r.logmel)[:2], strict=True))
    assert r.moments[2] == r.logmel.shape[1] > 100  # 1 s at a 10-ms hop, and the codec's padding

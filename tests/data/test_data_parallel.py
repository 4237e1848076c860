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
    assert [(f.task.clip_id, f.reason) for f in failed] == [("c3", "decoder crashed the worker process (twice)")]
    assert [r.duration_s for r in out if isinstance(r, ClipResult)] == [0, 1, 2, 4, 5, 6, 7]

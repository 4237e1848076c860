"""Ordered parallel map over clip tasks in worker processes, surviving workers that die.

Results come back in task order (so shards are identical for any number of workers) with a bounded
number of tasks in flight (so memory stays flat). A worker killed by a decoder crash breaks the pool:
the results already computed are kept, the other tasks in flight are retried one by one in a fresh
single-worker pool, a task that kills its worker again becomes a ``ClipFailure``, and the run goes on
with a new pool. A worker stuck inside one decoder call (where ``clip_timeout_s``, checked between
packets, cannot reach it) is ended by faulthandler's watchdog thread, which needs no GIL, after
``2 x clip_timeout_s + 5`` seconds: the same path as a crash. Workers and the fork server die with
the main process, also when it is killed (``lifeline.py``).
"""

from __future__ import annotations

import faulthandler
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .config import PreprocessConfig
from .forking import decode_context
from .lifeline import die_with
from .media import ClipTask
from .pipeline import ClipFailure, ClipResult, process_clip

# Tasks submitted ahead of the one being written: results come back in order, so a long clip at the
# head of the queue must not starve the other workers (one AudioSet result is ~1 MB: memory stays flat).
IN_FLIGHT = 64
_CFG: PreprocessConfig | None = None
_QUIET: Any = None


def _init_worker(cfg: PreprocessConfig, main_pid: int | None = None) -> None:
    global _CFG, _QUIET
    if main_pid is not None:
        die_with(main_pid)  # a worker of a killed run must not decode on as an orphan
    _CFG = cfg
    if _QUIET is None:  # (once: a --workers 0 run in a long-lived process comes here once per run)
        _QUIET = open(os.devnull, "w")  # noqa: SIM115 (the watchdog's dump target, open for the worker's life)


def hard_limit(cfg: PreprocessConfig) -> float | None:
    """Seconds after which a worker still inside one clip is ended (None: never)."""
    return None if cfg.clip_timeout_s is None else 2 * cfg.clip_timeout_s + 5


def _run(task: ClipTask) -> ClipResult | ClipFailure:
    assert _CFG is not None
    return process_clip(task, _CFG)


def _guarded(fn: Work, task: ClipTask) -> ClipResult | ClipFailure:
    """``fn(task)`` in a worker process, ended by the watchdog if it outlives :func:`hard_limit`."""
    limit = None if _CFG is None else hard_limit(_CFG)
    if limit is None:
        return fn(task)
    faulthandler.dump_traceback_later(limit, exit=True, file=_QUIET)  # its traceback dump is not for the user
    try:
        return fn(task)
    finally:
        faulthandler.cancel_dump_traceback_later()


def _pool(workers: int, cfg: PreprocessConfig) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=decode_context(), initializer=_init_worker,
                               initargs=(cfg, os.getpid()))


Work = Callable[[ClipTask], "ClipResult | ClipFailure"]


def _isolated(task: ClipTask, cfg: PreprocessConfig, fn: Work) -> ClipResult | ClipFailure:
    with _pool(1, cfg) as pool:
        try:
            return pool.submit(_guarded, fn, task).result()
        except BrokenProcessPool:
            limit = hard_limit(cfg)
            hung = "" if limit is None else f", or stuck in one decoder call for {limit:g} s"
            return ClipFailure(task, f"the worker process died twice on this clip (decoder crash{hung})")


def process_all(tasks: Iterable[ClipTask], cfg: PreprocessConfig, workers: int,
                fn: Work = _run) -> Generator[ClipResult | ClipFailure, None, None]:
    """``fn`` (default: ``process_clip`` with ``cfg``) over ``tasks``, results in task order;
    ``workers = 0`` runs in this process. ``fn`` must be importable by the worker processes."""
    if workers <= 0:
        _init_worker(cfg)
        for task in tasks:
            yield fn(task)
        return
    pending: deque[tuple[ClipTask, Future]] = deque()
    todo = iter(tasks)
    pool = _pool(workers, cfg)
    try:
        while True:
            while len(pending) < max(IN_FLIGHT, 8 * workers):
                nxt = next(todo, None)
                if nxt is None:
                    break
                task = nxt
                pending.append((task, pool.submit(_guarded, fn, task)))
            if not pending:
                return
            task, fut = pending[0]
            try:
                result = fut.result()
            except BrokenProcessPool:
                pool.shutdown(wait=False, cancel_futures=True)
                for task, done in pending:  # keep what finished; retry the rest one by one
                    ok = done.done() and not done.cancelled() and done.exception() is None
                    yield done.result() if ok else _isolated(task, cfg, fn)
                pending.clear()
                pool = _pool(workers, cfg)
                continue
            pending.popleft()
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

"""Progress of a preprocessing run: a rich bar (clips/s, ETA) on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ClipProgress:
    """Counts clips done (cached or failed). ``plain`` forces log lines (the default off a terminal);
    ``failures=False`` leaves the failed count out (evaluation, where a clip cannot fail)."""

    def __init__(self, total: int, label: str = "preprocess", stream: TextIO | None = None,
                 plain: bool | None = None, every_s: float = 10.0, failures: bool = True) -> None:
        self.total, self.label, self.every_s, self.failures = total, label, every_s, failures
        self.stream = stream or sys.stderr
        self.plain = not self.stream.isatty() if plain is None else plain
        self.done = self.failed = 0
        self.t0 = self.last = time.monotonic()
        self.bar: Progress | None = None

    def __enter__(self) -> ClipProgress:
        if not self.plain:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TaskProgressColumn(), TextColumn("{task.fields[rate]} clips/s"),
                                *([TextColumn("{task.fields[failed]} failed")] if self.failures else []),
                                TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, rate="-", failed=0)
        return self

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.t0, 1e-9)

    def advance(self, ok: bool, count: int = 1) -> None:
        """``count`` clips finished (``ok``: cached)."""
        self.done += count
        self.failed += 0 if ok else count
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(self.task, advance=count, rate=f"{self.rate():.1f}", failed=self.failed)
        elif now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            eta = (self.total - self.done) / max(self.rate(), 1e-9)
            failed = f"{self.failed} failed, " if self.failures else ""
            print(f"{self.label}: {self.done}/{self.total} clips, {failed}{self.rate():.1f} clips/s, "
                  f"ETA {eta:.0f} s", file=self.stream, flush=True)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()

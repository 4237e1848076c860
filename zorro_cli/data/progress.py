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
    """Counts clips done (cached or failed). ``plain`` forces log lines (the default off a terminal)."""

    def __init__(self, total: int, label: str = "preprocess", stream: TextIO | None = None,
                 plain: bool | None = None, every_s: float = 10.0) -> None:
        self.total, self.label, self.every_s = total, label, every_s
        self.stream = stream or sys.stderr
        self.plain = not self.stream.isatty() if plain is None else plain
        self.done = self.failed = 0
        self.t0 = self.last = time.monotonic()
        self.bar: Progress | None = None

    def __enter__(self) -> ClipProgress:
        if not self.plain:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TaskProgressColumn(), TextColumn("{task.fields[rate]} clips/s"),
                                TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                                TimeRemainingColumn(), transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total, rate="-", failed=0)
        return self

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.t0, 1e-9)

    def advance(self, ok: bool) -> None:
        """One clip finished (``ok``: cached)."""
        self.done += 1
        self.failed += not ok
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(self.task, advance=1, rate=f"{self.rate():.1f}", failed=self.failed)
        elif now - self.last >= self.every_s or self.done == self.total:
            self.last = now
            eta = (self.total - self.done) / max(self.rate(), 1e-9)
            print(f"{self.label}: {self.done}/{self.total} clips, {self.failed} failed, {self.rate():.1f} clips/s, "
                  f"ETA {eta:.0f} s", file=self.stream, flush=True)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()

"""Batches made by one background thread while the caller uses the previous ones (``workers = 0``).

With no DataLoader worker process, reading a batch (HDF5, JPEG decode, crops, log-mel windows) and
running the model on the previous one would otherwise take turns on one core. torch's kernels,
libjpeg-turbo and HDF5 reads release the GIL, so a thread overlaps most of the data work with the
model's at the cost of no process start-up and no copying between processes; the order of the items
and every value are those of the plain loop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


class _Raised:
    """An exception raised by the producer, re-raised in the consumer's thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """``items`` in order, up to ``depth`` of them made ahead by a daemon thread.

    An exception in the thread is raised here, at the item it replaced (same exception object). When the
    caller stops early (``break``, an exception, the generator closed), the thread stops after at most
    the item it is making and is joined."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Raised(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="zorro-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()

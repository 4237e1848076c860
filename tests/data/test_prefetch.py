"""The background-thread prefetch of evaluation batches (``workers = 0``): order, errors, early stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from zorro_cli.data.prefetch import prefetched


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "zorro-prefetch"}


def test_items_in_order_and_made_ahead() -> None:
    made: list[int] = []

    def source() -> Iterator[int]:
        for i in range(6):
            made.append(i)
            yield i

    seen = []
    for item in prefetched(source(), depth=2):
        if item == 0:
            deadline = time.monotonic() + 10
            while len(made) < 4 and time.monotonic() < deadline:  # 0 taken, 1 and 2 queued, 3 being put
                time.sleep(0.01)
            assert made == [0, 1, 2, 3]  # made ahead while the caller holds item 0, and no further
        seen.append(item)
    assert seen == list(range(6))
    assert not _threads()


def test_an_error_in_the_thread_is_raised_at_its_item() -> None:
    boom = OSError("shard 3: checksum mismatch")

    def source() -> Iterator[int]:
        yield 0
        yield 1
        raise boom

    seen = []
    with pytest.raises(OSError) as info:
        for item in prefetched(source()):
            seen.append(item)
    assert info.value is boom and seen == [0, 1]
    assert not _threads()


def test_stopping_early_ends_the_thread() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    for item in prefetched(endless(), depth=3):
        if item == 5:
            break
    assert not _threads()  # joined when the loop left the generator

    with pytest.raises(ZeroDivisionError):
        for item in prefetched(endless()):
            if item == 2:
                _ = 1 / 0  # the model failing on a batch
    assert not _threads()


def test_empty() -> None:
    assert list(prefetched([])) == []

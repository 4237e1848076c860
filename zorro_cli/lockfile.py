"""One writer per folder: an advisory lock file that a second writer is refused on, in one line.

``with hold_lock(out, what="cache"):`` takes ``out/.zorro-<name>.lock`` with ``fcntl.flock``. The
kernel releases a ``flock`` when its process exits in any way (``kill -9`` included), so a lock left
by a dead process is taken over by the next writer without any clean-up; the file itself stays as a
harmless marker. The holder's host, pid and command line are written into the file so the refusal
can say who holds it.

Several writers that are meant to share a folder (``zorro preprocess --shard I/N`` on many machines)
take locks of different ``name``\\ s. ``flock`` is not reliable across hosts on every network file
system; the lock guards against the common mistake (two commands on one machine), not every one.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError


class LockedError(UsageError):
    """Another live process holds the folder's lock."""


def lock_path(folder: Path, name: str = "writer") -> Path:
    """Where the lock for ``folder`` (and writer ``name``) lives."""
    return Path(folder) / f".zorro-{name}.lock"


def _holder(path: Path) -> str:
    """Who wrote the lock file, as a short phrase (best effort: the file may be mid-write)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def hold_lock(folder: str | Path, *, what: str, name: str = "writer") -> Iterator[Path]:
    """Hold ``folder``'s lock for the block; raise :class:`LockedError` at once if it is held.

    ``what`` names the folder for the message ("cache", "run folder"). The folder is created if
    missing. Yields the lock file's path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"{folder}: this {what} is in use by {_holder(path)}; wait for it to finish or use another folder"
            ) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock

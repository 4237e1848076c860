"""Who may write where: a cache folder's own files, the one-writer lock, and what a write may run into.

``zorro preprocess`` writes into ``--out`` only when it is new, empty, or already a zorro cache (its
``cache.json`` reads as one); ``--rebuild`` removes only the cache's own files (:func:`own_files`), so
a user's file that happens to sit in the folder is never deleted. One writer per folder (or per
``--shard I/N`` part) holds ``zorro_cli.lockfile.hold_lock``. A full disk or a folder that cannot be
written is one line (:func:`write_error`), not a traceback, and the files already finished stay.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..atomic import leftovers
from ..errors import Failure, UsageError
from ..lockfile import hold_lock
from .layout import FAILURES, INDEX, META, PLAN_FAILURES, SHARDS, SUMMARY, shard_number

OUTPUTS = (INDEX, FAILURES, SUMMARY, META, PLAN_FAILURES)
MIN_FREE = 16 << 20  # bytes kept free while a shard is written: room for HDF5's caches to be flushed
DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_LOCK = re.compile(r"\.zorro-.*\.lock")


def is_cache(out: Path) -> bool:
    """Whether ``out/cache.json`` reads as a zorro cache's (a JSON object with its schema, fingerprint,
    settings and plan)."""
    try:
        meta = json.loads((out / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"schema", "fingerprint", "settings", "plan"} <= set(meta)


def check_out(out: Path) -> None:
    """Refuse (``UsageError``) an ``--out`` that is a file, or a non-empty folder that is not a cache."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    if not out.is_dir() or is_cache(out):
        return
    others = sorted(p.name for p in out.iterdir() if not _LOCK.fullmatch(p.name))
    if others:
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        raise UsageError(f"--out: {out} is not empty ({shown}) and is not a zorro cache (no {META}); "
                         "nothing was written: give a new or empty folder")


def own_files(out: Path, part: tuple[int, int] = (0, 1)) -> list[Path]:
    """The files of the cache in ``out`` that ``--rebuild`` (of ``part`` I/N) may delete: its outputs and
    their temporaries, and its shard files (finished or temporary; of the part only when N > 1)."""
    i, n = part
    found = []
    if n == 1:
        for name in OUTPUTS:
            found += [p for p in [out / name] if p.is_file()] + leftovers(out / name)
    else:  # the parts share the folder: only the finished-cache files (it is no longer complete)
        found += [out / name for name in (INDEX, FAILURES, SUMMARY) if (out / name).is_file()]
    shards = out / SHARDS
    for p in sorted(shards.iterdir()) if shards.is_dir() else []:
        k = shard_number(p)
        if k is not None and p.is_file() and k % n == i:
            found.append(p)
    return found


def remove_own_files(out: Path, part: tuple[int, int] = (0, 1)) -> None:
    """Delete :func:`own_files`; the shards folder too when nothing else is left in it."""
    for p in own_files(out, part):
        p.unlink(missing_ok=True)
    with suppress(OSError):  # absent, or holds files that are not ours
        (out / SHARDS).rmdir()


def lock_name(part: tuple[int, int]) -> str:
    """The lock a preprocess writer takes: one per folder, or one per ``--shard I/N`` part."""
    i, n = part
    return "cache" if n == 1 else f"cache-part-{i}-of-{n}"


@contextmanager
def writing_into(out: Path, part: tuple[int, int] = (0, 1)) -> Iterator[None]:
    """Hold ``out``'s writer lock for the block (``LockedError`` at once when another live process holds
    it); a full disk or a folder that cannot be written, here or in the block, is one line
    (:func:`write_error`) instead of a traceback."""
    try:
        with hold_lock(out, what="cache", name=lock_name(part)):
            yield
    except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError for some failed writes
        mapped = write_error(exc, out)
        if mapped is None:
            raise
        raise mapped from None


def _errno(exc: OSError | RuntimeError) -> int | None:
    """The errno of ``exc``, also when HDF5 only wrote it into the message (``errno = 28``)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    m = re.search(r"errno = (\d+)", str(exc))
    return int(m.group(1)) if m else None


def write_error(exc: OSError | RuntimeError, out: Path) -> UsageError | Failure | None:
    """The one-line error for a write into ``out`` that failed with ``exc``: a full disk is a
    ``Failure`` (exit 1), a folder that cannot be written a ``UsageError`` (exit 2); None for others."""
    code = _errno(exc)
    where = getattr(exc, "filename", None) or out
    if code in FULL:
        return Failure(f"disk full while writing {where} ({free_text(out)} free); the finished shards are "
                       "kept: free some space and run the same command again to resume")
    if code in DENIED:
        return UsageError(f"--out: cannot write in {out} ({errno.errorcode.get(code or 0, code)} on {where}); "
                          "give a writable folder")
    return None


def free_bytes(folder: Path) -> int:
    """Bytes free for this user on ``folder``'s file system (its nearest existing parent)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def free_text(folder: Path) -> str:
    try:
        return f"{free_bytes(folder) / 2**20:.1f} MiB"
    except OSError:
        return "unknown"


def ensure_space(folder: Path, need: int) -> None:
    """``Failure`` when ``folder`` has less than ``need`` + :data:`MIN_FREE` bytes free. Called before
    each clip is added to a shard: HDF5 that runs into a full disk mid-write cannot close its file
    any more and brings the process down at exit (exit 139), so it must never get there."""
    free = free_bytes(folder)
    if free < need + MIN_FREE:
        raise Failure(f"disk full: {free / 2**20:.1f} MiB free in {folder}, need {(need + MIN_FREE) / 2**20:.1f} "
                      "MiB to go on; the finished shards are kept: free some space and run the same command "
                      "again to resume")

"""Atomic writes: the one way this package puts a file or folder where readers (or a resumed run) look.

Everything is written under a temporary sibling name, ``.NAME.tmp-HOST-PID``, and renamed into place
when complete (one ``rename``, atomic on POSIX), so a reader never sees half a file and a killed
writer leaves only temporary names behind, which :func:`leftovers` finds. The host and process in the
name keep writers apart when several machines share a folder (``zorro preprocess --shard I/N``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The temporary sibling ``path`` is written as before it is renamed into place."""
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def leftovers(path: Path) -> list[Path]:
    """Temporary files of ``path`` left by writers that did not finish (any host, any process)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.tmp-*"))


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary name given by :func:`temporary_name`."""
    return path.name.startswith(".") and ".tmp-" in path.name


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def copy_atomic(src: Path, dst: Path, link: bool = False) -> None:
    """Copy ``src`` to ``dst`` atomically (``link``: a hard link when the file system allows one)."""
    with atomic_path(dst) as tmp:
        try:
            if not link:
                raise OSError
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_modes(tmp: Path) -> None:
    """Give a finished folder the modes a plain ``mkdir`` / ``open`` would have (0755 / 0644 under the
    usual umask 022): ``mkdtemp`` makes folders 0700, and some writers (safetensors) make files 0600."""
    mask = current_umask()
    for root, dirs, files in os.walk(tmp):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]


@contextmanager
def atomic_folder(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``folder`` in one rename, else vanishes.
    The folder and its files get the modes ``mkdir`` and ``open`` would give them (umask respected)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        yield tmp
        _publish_modes(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)

"""The media files a ``zorro predict`` command line names: files, folders, globs and manifests."""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence
from pathlib import Path

from ..data.media import NOT_MEDIA
from ..errors import UsageError

MANIFEST_SUFFIXES = (".csv", ".tsv")
PATH_COLUMNS = ("path", "file", "filename")


def folder_media(folder: Path) -> list[Path]:
    """Every file under ``folder`` that may be media (not a manifest, text, partial download or hidden
    file), in sorted order."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / f for f in sorted(files)
                if not f.startswith(".") and os.path.splitext(f)[1].lower() not in NOT_MEDIA]
    return out


def manifest_media(manifest: Path) -> list[Path]:
    """The files a CSV/TSV manifest lists in its ``path`` (or ``file``, ``filename``) column, relative
    paths resolved against the manifest's folder."""
    delimiter = "\t" if manifest.suffix.lower() == ".tsv" else ","
    with manifest.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        column = next((c for c in PATH_COLUMNS if c in (reader.fieldnames or [])), None)
        if column is None:
            raise UsageError(f"{manifest}: expected a column named {' or '.join(PATH_COLUMNS)}, "
                             f"got {', '.join(reader.fieldnames or []) or 'no header'}")
        return [manifest.parent / r[column] for r in reader if r.get(column)]


def expand_media(args: Sequence[str | Path]) -> list[Path]:
    """The files named by ``args`` in order: a file, a folder (its media files), a glob pattern, or a
    ``.csv``/``.tsv`` manifest. A name that matches nothing is a ``UsageError``; a listed file that does
    not exist stays in the list (it is reported as a failed file, like one that cannot be decoded)."""
    out: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            out += folder_media(path)
        elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            out += manifest_media(path)
        elif path.is_file():
            out.append(path)
        elif glob.has_magic(str(arg)):
            hits = sorted(Path(p) for p in glob.glob(str(arg), recursive=True))
            if not hits:
                raise UsageError(f"FILE {arg}: no file matches this pattern")
            out += [p for p in hits if p.is_file()]
        else:
            raise UsageError(f"FILE {arg}: no such file or folder")
    return out

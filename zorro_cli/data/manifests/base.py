"""What every manifest format shares: ``Row``, ``Manifest``, ``ManifestFormat``, ``ManifestError`` and the
small CSV helpers the readers use. The formats themselves are one module each beside this one, listed
in the registry (``zorro_cli/data/manifests/__init__.py``).

A row that cannot be read becomes a problem ``(where, reason)`` for the failure report; a file that
cannot be read at all raises ``ManifestError`` (a usage error).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UsageError


class ManifestError(UsageError):
    """A manifest (or labels file) that cannot be used at all; ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class Row:
    """One manifest row. ``fields`` fill the media-name patterns (``{ytid}``, ``{start}``, ...)."""

    clip_id: str
    path: str
    labels: tuple[str, ...]
    split: str
    start: float | None = None
    end: float | None = None
    fields: dict[str, Any] = field(default_factory=dict, compare=False)
    where: str = ""


@dataclass
class Manifest:
    """Rows of one or more manifest files with the label vocabulary (index = position)."""

    rows: list[Row]
    label_names: list[str]
    multilabel: bool
    problems: list[tuple[str, str]] = field(default_factory=list)


RowReader = Callable[[Path], Iterator["Row | tuple[str, str]"]]
Vocabulary = Callable[[list[Path], "Path | None", list["Row"]], "list[str] | None"]


@dataclass(frozen=True)
class ManifestFormat:
    """One manifest format: how to read its files, and what it implies downstream.

    ``read`` yields a ``Row`` per usable line and ``(where, reason)`` per unusable one. ``patterns``
    are the default media-name patterns (``zorro_cli.data.media``). ``keeps_path``: a clip's recorded
    path is the manifest's (a file path), else the media file found (the manifest names a video id).
    ``multilabel``: always multi-label (otherwise: when some row has several labels). ``vocabulary``
    (optional) builds the label names itself ``(files, labels_file, rows) -> names or None``; it may
    rewrite ``rows`` in place (AudioSet: machine ids -> display names).
    """

    name: str
    read: RowReader
    patterns: tuple[str, ...]
    keeps_path: bool = False
    multilabel: bool = False
    vocabulary: Vocabulary | None = None


def read_label_names(path: Path) -> tuple[list[str], dict[str, str]]:
    """Label names from ``class_labels_indices.csv`` (``index,mid,display_name``; ordered by index) or a
    text file with one name a line. Returns the names and a mid -> name map (empty for text files)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read labels file {path}: {exc}") from None
    lines = text.splitlines()
    if lines and [c.strip() for c in lines[0].split(",")][:3] == ["index", "mid", "display_name"]:
        entries = []
        for n, rec in enumerate(csv.reader(lines[1:]), start=2):
            if not rec:
                continue
            if len(rec) < 3 or not rec[0].strip().isdigit():
                raise ManifestError(f"{path}:{n}: expected index,mid,display_name")
            entries.append((int(rec[0]), rec[1].strip(), rec[2].strip()))
        entries.sort()
        return [name for _, _, name in entries], {mid: name for _, mid, name in entries}
    return [line.strip() for line in lines if line.strip()], {}


# --- helpers shared by the readers -----------------------------------------------------------------


def open_csv(path: Path) -> list[str]:
    """The lines of a manifest file (BOM stripped); ``ManifestError`` when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None


def header(path: Path, lines: list[str], required: tuple[str, ...]) -> list[str]:
    """The header's column names; ``ManifestError`` when one of ``required`` is missing."""
    names = [c.strip() for c in next(csv.reader(lines[:1]), [])]
    missing = [c for c in required if c not in names]
    if missing:
        raise ManifestError(f"{path}: header {','.join(names) or '(empty)'} lacks column(s) {', '.join(missing)}")
    return names


def number(text: str, where: str, what: str) -> float:
    """``text`` as a finite float; ``ValueError("where: what ... is not a finite number")`` otherwise
    (``float`` reads 'nan' and 'inf', which no clip window can use)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {what} {text!r} is not a finite number")
    return value


def window_fields(ytid: str, start: float, end: float) -> dict[str, Any]:
    """Pattern fields of a YouTube clip window."""
    return {"ytid": ytid, "start": round(start), "end": round(end), "start_ms": round(start * 1000),
            "end_ms": round(end * 1000), "start_f": start, "end_f": end}

"""Manifest readers: AudioSet, VGGSound, Kinetics-400, ESC-50 and a generic CSV, read as published.

Layouts (see DESIGN.md §6):

- ``audioset``: segment CSVs (``# YTID, start_seconds, end_seconds, positive_labels``, three comment
  lines, labels quoted and comma-separated machine ids) + ``class_labels_indices.csv``
  (``index,mid,display_name``) beside the manifest or given as the labels file. Multi-label.
- ``vggsound``: ``vggsound.csv``, no header, ``youtube_id,start_seconds,label,split``; 10-s clips.
- ``kinetics``: ``label,youtube_id,time_start,time_end,split`` (extra columns ignored).
- ``esc50``: ``meta/esc50.csv`` ``filename,fold,target,category,...``; split ``fold1`` ... ``fold5``.
- ``generic``: ``path,label[,split]`` with a header; several labels joined by ``;``; extra columns
  ignored; ``split`` defaults to ``train``; multi-label when any row has several labels.

A row that cannot be read becomes a problem ``(where, reason)`` for the failure report; a file that
cannot be read at all raises ``ManifestError`` (a usage error).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

FORMATS: tuple[str, ...] = ("generic", "audioset", "vggsound", "kinetics", "esc50")
VGGSOUND_SECONDS = 10.0  # VGGSound clips are the 10 s from start_seconds


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


def read_manifest(fmt: str, files: list[Path], labels_file: Path | None = None) -> Manifest:
    """Read ``files`` of format ``fmt``; ``labels_file`` fixes the vocabulary (else built from rows)."""
    if fmt not in FORMATS:
        raise ManifestError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    rows: list[Row] = []
    problems: list[tuple[str, str]] = []
    for path in files:
        if not path.is_file():
            raise ManifestError(f"manifest not found: {path}")
        reader = {"generic": _generic, "audioset": _audioset, "vggsound": _vggsound,
                  "kinetics": _kinetics, "esc50": _esc50}[fmt]
        for item in reader(path):
            (rows if isinstance(item, Row) else problems).append(item)  # type: ignore[arg-type]
    vocab = _vocabulary(fmt, files, labels_file, rows)
    known = set(vocab)
    kept = []
    for row in rows:
        unknown = [lab for lab in row.labels if lab not in known]
        if unknown:
            problems.append((row.where, f"label {unknown[0]!r} not in the label vocabulary"))
        else:
            kept.append(row)
    multilabel = fmt == "audioset" or any(len(r.labels) > 1 for r in kept)
    return Manifest(kept, vocab, multilabel, problems)


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


# --- per-format readers: yield Row or (where, reason) ----------------------------------------------


def _open_csv(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None


def _header(path: Path, lines: list[str], required: tuple[str, ...]) -> list[str]:
    header = [c.strip() for c in next(csv.reader(lines[:1]), [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise ManifestError(f"{path}: header {','.join(header) or '(empty)'} lacks column(s) {', '.join(missing)}")
    return header


def _number(text: str, where: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None


def _window_fields(ytid: str, start: float, end: float) -> dict[str, Any]:
    return {"ytid": ytid, "start": round(start), "end": round(end), "start_ms": round(start * 1000),
            "end_ms": round(end * 1000), "start_f": start, "end_f": end}


def _generic(path: Path) -> Iterator[Row | tuple[str, str]]:
    lines = _open_csv(path)
    header = _header(path, lines, ("path",))
    for n, rec in enumerate(csv.DictReader(lines[1:], fieldnames=header), start=2):
        where = f"{path.name}:{n}"
        media = (rec.get("path") or "").strip()
        if not media:
            if any((v or "").strip() for v in rec.values() if isinstance(v, str)):
                yield where, "empty path"
            continue
        labels = tuple(s.strip() for s in (rec.get("label") or "").split(";") if s.strip())
        clip_id = re.sub(r"\.[^./]*$", "", media.replace("\\", "/"))
        yield Row(clip_id, media, labels, (rec.get("split") or "train").strip() or "train",
                  fields={"path": media}, where=where)


def _audioset(path: Path) -> Iterator[Row | tuple[str, str]]:
    split = re.sub(r"_segments$", "", path.stem)
    for n, rec in enumerate(csv.reader(_open_csv(path), skipinitialspace=True), start=1):
        if not rec or rec[0].lstrip().startswith("#"):
            continue
        where = f"{path.name}:{n}"
        if len(rec) < 4:
            yield where, "expected YTID, start_seconds, end_seconds, positive_labels"
            continue
        try:
            start, end = _number(rec[1], where, "start"), _number(rec[2], where, "end")
        except ValueError as exc:
            yield where, str(exc).split(": ", 1)[1]
            continue
        ytid = rec[0].strip()
        mids = tuple(m.strip() for m in ",".join(rec[3:]).split(",") if m.strip())
        yield Row(f"{ytid}_{round(start * 1000)}", ytid, mids, split, start, end,
                  _window_fields(ytid, start, end), where)


def _vggsound(path: Path) -> Iterator[Row | tuple[str, str]]:
    for n, rec in enumerate(csv.reader(_open_csv(path)), start=1):
        if not rec:
            continue
        where = f"{path.name}:{n}"
        if len(rec) < 4 or not re.fullmatch(r"\d+(\.\d*)?", rec[1].strip()):
            yield where, "expected youtube_id,start_seconds,label,split"
            continue
        ytid, start = rec[0].strip(), float(rec[1])
        end = start + VGGSOUND_SECONDS
        fields = {**_window_fields(ytid, start, end), "label": rec[2].strip()}
        yield Row(f"{ytid}_{round(start):06d}", ytid, (rec[2].strip(),), rec[3].strip(), start, end, fields, where)


def _kinetics(path: Path) -> Iterator[Row | tuple[str, str]]:
    lines = _open_csv(path)
    header = _header(path, lines, ("label", "youtube_id", "time_start", "time_end"))
    for n, rec in enumerate(csv.DictReader(lines[1:], fieldnames=header), start=2):
        where = f"{path.name}:{n}"
        try:
            start = _number(rec["time_start"] or "", where, "time_start")
            end = _number(rec["time_end"] or "", where, "time_end")
        except ValueError as exc:
            yield where, str(exc).split(": ", 1)[1]
            continue
        ytid, label = (rec["youtube_id"] or "").strip(), (rec["label"] or "").strip()
        fields = {**_window_fields(ytid, start, end), "label": label, "label_": label.replace(" ", "_")}
        split = (rec.get("split") or path.stem).strip()
        yield Row(f"{ytid}_{round(start):06d}_{round(end):06d}", ytid, (label,) if label else (), split,
                  start, end, fields, where)


def _esc50(path: Path) -> Iterator[Row | tuple[str, str]]:
    lines = _open_csv(path)
    header = _header(path, lines, ("filename", "fold", "target", "category"))
    for n, rec in enumerate(csv.DictReader(lines[1:], fieldnames=header), start=2):
        name = (rec["filename"] or "").strip()
        if not name:
            continue
        fields = {"filename": name, "stem": Path(name).stem, "target": (rec["target"] or "").strip()}
        yield Row(Path(name).stem, name, ((rec["category"] or "").strip(),), f"fold{(rec['fold'] or '').strip()}",
                  fields=fields, where=f"{path.name}:{n}")


def _vocabulary(fmt: str, files: list[Path], labels_file: Path | None, rows: list[Row]) -> list[str]:
    """The label names; AudioSet rows (machine ids) are rewritten in place to display names."""
    if fmt == "audioset":
        found = labels_file or next((f.parent / "class_labels_indices.csv" for f in files
                                     if (f.parent / "class_labels_indices.csv").is_file()), None)
        if found is None:
            raise ManifestError("audioset needs class_labels_indices.csv beside the manifest (or --labels FILE)")
        names, by_mid = read_label_names(found)
        rows[:] = [_rename(r, by_mid) for r in rows]
        return names
    if labels_file is not None:
        return read_label_names(labels_file)[0]
    if fmt == "esc50":
        pairs = {}
        for r in rows:
            if r.fields.get("target", "").isdigit() and r.labels:
                pairs[int(r.fields["target"])] = r.labels[0]
        if sorted(pairs) == list(range(len(pairs))):
            return [pairs[i] for i in range(len(pairs))]
    return sorted({lab for r in rows for lab in r.labels})


def _rename(row: Row, by_mid: dict[str, str]) -> Row:
    labels = tuple(by_mid.get(mid, mid) for mid in row.labels)
    return Row(row.clip_id, row.path, labels, row.split, row.start, row.end, row.fields, row.where)

"""Manifest formats: a registry of readers, one module per format (AudioSet, VGGSound, Kinetics-400,
ESC-50 and a generic CSV), read as published (see DESIGN.md §6).

A new format is one new module here defining ``FORMAT = ManifestFormat(...)`` (see ``base.py``) and one
line in ``FORMATS`` below; ``zorro preprocess --format NAME`` then reads it, and its default media-name
patterns are used to find the files.
"""

from __future__ import annotations

from pathlib import Path

from . import audioset, esc50, generic, kinetics, vggsound
from .base import Manifest, ManifestError, ManifestFormat, Row, read_label_names

FORMATS: dict[str, ManifestFormat] = {f.name: f for f in (
    generic.FORMAT,
    audioset.FORMAT,
    vggsound.FORMAT,
    kinetics.FORMAT,
    esc50.FORMAT,
)}

__all__ = ["FORMATS", "Manifest", "ManifestError", "ManifestFormat", "Row", "manifest_format", "read_label_names",
           "read_manifest"]


def manifest_format(name: str) -> ManifestFormat:
    """The registered format ``name``; ``ManifestError`` naming the known ones otherwise."""
    if name not in FORMATS:
        raise ManifestError(f"unknown format {name!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def read_manifest(fmt: str, files: list[Path], labels_file: Path | None = None) -> Manifest:
    """Read ``files`` of format ``fmt``; ``labels_file`` fixes the vocabulary (else built from rows)."""
    form = manifest_format(fmt)
    rows: list[Row] = []
    problems: list[tuple[str, str]] = []
    for path in files:
        if not path.is_file():
            raise ManifestError(f"manifest not found: {path}")
        for item in form.read(path):
            if isinstance(item, Row):
                rows.append(item)
            else:
                problems.append(item)
    vocab = form.vocabulary(files, labels_file, rows) if form.vocabulary is not None else None
    if vocab is None:
        vocab = read_label_names(labels_file)[0] if labels_file is not None else sorted(
            {lab for r in rows for lab in r.labels})
    known = set(vocab)
    kept = []
    for row in rows:
        unknown = [lab for lab in row.labels if lab not in known]
        if unknown:
            problems.append((row.where, f"label {unknown[0]!r} not in the label vocabulary"))
        else:
            kept.append(row)
    multilabel = form.multilabel or any(len(r.labels) > 1 for r in kept)
    return Manifest(kept, vocab, multilabel, problems)

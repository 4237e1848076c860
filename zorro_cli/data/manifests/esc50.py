"""``esc50``: ``meta/esc50.csv`` ``filename,fold,target,category,...``; split ``fold1`` ... ``fold5``;
the label vocabulary ordered by ``target``."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from .base import ManifestFormat, Row, header, open_csv


def read(path: Path) -> Iterator[Row | tuple[str, str]]:
    lines = open_csv(path)
    cols = header(path, lines, ("filename", "fold", "target", "category"))
    for n, rec in enumerate(csv.DictReader(lines[1:], fieldnames=cols), start=2):
        name = (rec["filename"] or "").strip()
        if not name:
            continue
        fields = {"filename": name, "stem": Path(name).stem, "target": (rec["target"] or "").strip()}
        yield Row(Path(name).stem, name, ((rec["category"] or "").strip(),), f"fold{(rec['fold'] or '').strip()}",
                  fields=fields, where=f"{path.name}:{n}")


def vocabulary(files: list[Path], labels_file: Path | None, rows: list[Row]) -> list[str] | None:
    """Names ordered by the ``target`` column (when the targets are 0..N-1 and no labels file is given)."""
    if labels_file is not None:
        return None
    pairs = {}
    for r in rows:
        if r.fields.get("target", "").isdigit() and r.labels:
            pairs[int(r.fields["target"])] = r.labels[0]
    if sorted(pairs) == list(range(len(pairs))):
        return [pairs[i] for i in range(len(pairs))]
    return None


FORMAT = ManifestFormat("esc50", read, patterns=("audio/{filename}", "{filename}"), keeps_path=True,
                        vocabulary=vocabulary)

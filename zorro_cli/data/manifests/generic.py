"""``generic``: ``path,label[,split]`` with a header; several labels joined by ``;``; extra columns
ignored; ``split`` defaults to ``train``; multi-label when any row has several labels."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from .base import ManifestError, ManifestFormat, Row, header, open_csv

# Columns people name their labels instead of ``label``: refused with the rename to make, rather than
# cached as an unlabelled dataset that only fails at fine-tuning.
LABEL_LOOKALIKES = ("class", "classes", "labels", "category", "target", "class_name", "classname")


def read(path: Path) -> Iterator[Row | tuple[str, str]]:
    lines = open_csv(path)
    cols = header(path, lines, ("path",))
    lookalike = next((c for c in cols if c.lower() in LABEL_LOOKALIKES), None) if "label" not in cols else None
    if lookalike is not None:
        raise ManifestError(f"{path}: column {lookalike!r} but no 'label' column; a generic manifest is "
                            f"path,label[,split]: rename {lookalike!r} to 'label' (or remove it for unlabelled clips)")
    for n, rec in enumerate(csv.DictReader(lines[1:], fieldnames=cols), start=2):
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


FORMAT = ManifestFormat("generic", read, patterns=("{path}",), keeps_path=True)

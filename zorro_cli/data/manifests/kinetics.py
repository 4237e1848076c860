"""``kinetics``: ``label,youtube_id,time_start,time_end,split`` (extra columns ignored; the split
defaults to the file's stem)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from .base import ManifestFormat, Row, header, number, open_csv, window_fields


def read(path: Path) -> Iterator[Row | tuple[str, str]]:
    lines = open_csv(path)
    cols = header(path, lines, ("label", "youtube_id", "time_start", "time_end"))
    for n, rec in enumerate(csv.DictReader(lines[1:], fieldnames=cols), start=2):
        where = f"{path.name}:{n}"
        try:
            start = number(rec["time_start"] or "", where, "time_start")
            end = number(rec["time_end"] or "", where, "time_end")
        except ValueError as exc:
            yield where, str(exc).split(": ", 1)[1]
            continue
        ytid, label = (rec["youtube_id"] or "").strip(), (rec["label"] or "").strip()
        fields = {**window_fields(ytid, start, end), "label": label, "label_": label.replace(" ", "_")}
        split = (rec.get("split") or path.stem).strip()
        yield Row(f"{ytid}_{round(start):06d}_{round(end):06d}", ytid, (label,) if label else (), split,
                  start, end, fields, where)


FORMAT = ManifestFormat("kinetics", read, patterns=("{label}/{ytid}_{start:06d}_{end:06d}",
                                                  "{label_}/{ytid}_{start:06d}_{end:06d}",
                                                  "{ytid}_{start:06d}_{end:06d}", "{label}/{ytid}", "{ytid}"))

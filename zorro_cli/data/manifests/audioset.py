"""``audioset``: segment CSVs (``# YTID, start_seconds, end_seconds, positive_labels``, three comment
lines, labels quoted and comma-separated machine ids) + ``class_labels_indices.csv``
(``index,mid,display_name``) beside the manifest or given as the labels file. Multi-label."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from .base import ManifestError, ManifestFormat, Row, number, open_csv, read_label_names, window_fields


def read(path: Path) -> Iterator[Row | tuple[str, str]]:
    split = re.sub(r"_segments$", "", path.stem)
    for n, rec in enumerate(csv.reader(open_csv(path), skipinitialspace=True), start=1):
        if not rec or rec[0].lstrip().startswith("#"):
            continue
        where = f"{path.name}:{n}"
        if len(rec) < 4:
            yield where, "expected YTID, start_seconds, end_seconds, positive_labels"
            continue
        try:
            start, end = number(rec[1], where, "start"), number(rec[2], where, "end")
        except ValueError as exc:
            yield where, str(exc).split(": ", 1)[1]
            continue
        ytid = rec[0].strip()
        mids = tuple(m.strip() for m in ",".join(rec[3:]).split(",") if m.strip())
        yield Row(f"{ytid}_{round(start * 1000)}", ytid, mids, split, start, end,
                  window_fields(ytid, start, end), where)


def vocabulary(files: list[Path], labels_file: Path | None, rows: list[Row]) -> list[str]:
    """The names of ``class_labels_indices.csv``; rows' machine ids are rewritten to display names."""
    found = labels_file or next((f.parent / "class_labels_indices.csv" for f in files
                                 if (f.parent / "class_labels_indices.csv").is_file()), None)
    if found is None:
        raise ManifestError("audioset needs class_labels_indices.csv beside the manifest (or --labels FILE)")
    names, by_mid = read_label_names(found)
    rows[:] = [_rename(r, by_mid) for r in rows]
    return names


def _rename(row: Row, by_mid: dict[str, str]) -> Row:
    labels = tuple(by_mid.get(mid, mid) for mid in row.labels)
    return Row(row.clip_id, row.path, labels, row.split, row.start, row.end, row.fields, row.where)


FORMAT = ManifestFormat("audioset", read, patterns=("{ytid}_{start}", "{ytid}_{start_ms}", "{ytid}_{start}_{end}",
                                                  "{ytid}_{start_ms}_{end_ms}", "{ytid}_{start_f:.3f}",
                                                  "{ytid}_{start:06d}_{end:06d}", "{ytid}"),
                        multilabel=True, vocabulary=vocabulary)

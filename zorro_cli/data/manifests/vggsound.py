"""``vggsound``: ``vggsound.csv``, no header, ``youtube_id,start_seconds,label,split``; 10-s clips."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from .base import ManifestFormat, Row, open_csv, window_fields

VGGSOUND_SECONDS = 10.0  # VGGSound clips are the 10 s from start_seconds


def read(path: Path) -> Iterator[Row | tuple[str, str]]:
    for n, rec in enumerate(csv.reader(open_csv(path)), start=1):
        if not rec:
            continue
        where = f"{path.name}:{n}"
        if len(rec) < 4 or not re.fullmatch(r"\d+(\.\d*)?", rec[1].strip()):
            yield where, "expected youtube_id,start_seconds,label,split"
            continue
        ytid, start = rec[0].strip(), float(rec[1])
        end = start + VGGSOUND_SECONDS
        fields = {**window_fields(ytid, start, end), "label": rec[2].strip()}
        yield Row(f"{ytid}_{round(start):06d}", ytid, (rec[2].strip(),), rec[3].strip(), start, end, fields, where)


FORMAT = ManifestFormat("vggsound", read, patterns=("{ytid}_{start:06d}", "{ytid}_{start}", "{ytid}_{start:06d}_{end:06d}",
                                                  "{ytid}"))

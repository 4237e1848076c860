"""Media lookup by name patterns, clip windows, and the clip plan."""

from __future__ import annotations

import pytest

from zorro_cli.data.manifests import Manifest, Row
from zorro_cli.data.media import MediaIndex, clip_window, find_media, plan_clips


@pytest.mark.parametrize(("start", "end", "trimmed", "mode", "expected"), [
    (30.0, 40.0, False, "auto", (30.0, 40.0)),  # full video: decode the window
    (30.0, 40.0, True, "auto", (0.0, 10.0)),  # already cut to the window
    (30.0, 40.0, True, "manifest", (30.0, 40.0)),
    (30.0, 40.0, False, "whole", (0.0, None)),
    (None, None, False, "auto", (0.0, None)),  # no window in the manifest
])
def test_clip_window(start, end, trimmed, mode, expected):
    assert clip_window(start, end, trimmed, mode) == expected


def test_find_media_patterns(tmp_path):
    for rel in ("YT1_30.mp4", "YT2.webm", "notes.txt", "abseiling/YT3_000059_000069.mkv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    index = MediaIndex(tmp_path)
    row = Row("c", "YT1", (), "t", 30.0, 40.0, {"ytid": "YT1", "start": 30, "end": 40})
    assert find_media(row, index, ("{ytid}_{start}", "{ytid}")) == ("YT1_30.mp4", True, ["YT1_30"])
    row2 = Row("c", "YT2", (), "t", 1.0, 11.0, {"ytid": "YT2", "start": 1, "end": 11})
    assert find_media(row2, index, ("{ytid}_{start}", "{ytid}")) == ("YT2.webm", False, ["YT2_1", "YT2"])
    row3 = Row("c", "YT3", (), "t", 59.0, 69.0, {"ytid": "YT3", "start": 59, "end": 69, "label": "abseiling"})
    assert find_media(row3, index, ("{label}/{ytid}_{start:06d}_{end:06d}",))[:2] == (
        "abseiling/YT3_000059_000069.mkv", True)
    assert index.find("notes") is None  # not media


def test_plan_failures_and_order(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.mp4").write_bytes(b"x")
    rows = [Row("a", "a.mp4", ("dog",), "train", fields={"path": "a.mp4"}, where="m:2"),
            Row("b", "b.mp4", ("cat", "dog"), "test", fields={"path": "b.mp4"}, where="m:3"),
            Row("a", "a.mp4", ("dog",), "train", fields={"path": "a.mp4"}, where="m:4"),
            Row("c", "c.mp4", ("dog",), "train", fields={"path": "c.mp4"}, where="m:5")]
    man = Manifest(rows, ["cat", "dog"], True, [("m:6", "bad row")])
    tasks, failures = plan_clips(man, "generic", tmp_path, (), "auto")
    assert [(t.clip_id, t.labels, t.split, t.start, t.end) for t in tasks] == [
        ("a", (1,), "train", 0.0, None), ("b", (0, 1), "test", 0.0, None)]
    assert tasks[0].media == str((tmp_path / "a.mp4").resolve())
    assert failures == [("m:6", "bad row"), ("a.mp4", "duplicate clip 'a' (first at m:2)"),
                        ("c.mp4", "media not found under --media-root (tried c.mp4)")]

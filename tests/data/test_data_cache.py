"""Shard writer, finalize and reader on hand-made clips (no media decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zorro_cli.data.cache import CacheError, open_cache
from zorro_cli.data.index import finalize, merge_parts, write_failures
from zorro_cli.data.jpeg import encode_jpeg
from zorro_cli.data.layout import PLAN_FAILURES, fingerprint, shard_path
from zorro_cli.data.media import ClipTask
from zorro_cli.data.pipeline import ClipFailure, ClipResult
from zorro_cli.data.shards import ShardWriter, shard_done

SETTINGS = {"n_mels": 2, "fps": 2.0, "sample_rate": 16000, "hop_length": 160}


def task(i: int, labels: tuple[int, ...] = (0,)) -> ClipTask:
    return ClipTask(f"c{i}", f"c{i}.mp4", f"/m/c{i}.mp4", labels, "train")


def image(level: int) -> np.ndarray:
    return np.full((8, 12, 3), level, np.uint8)


def make_cache(root: Path, shards: list[list[ClipResult | ClipFailure]], plan_failures=()) -> Path:
    meta = {"fingerprint": "fp", "settings": SETTINGS, "format": "generic", "label_names": ["a", "b"],
            "multilabel": True, "plan": {"num_shards": len(shards), "rows": 9, "plan_failures": len(plan_failures),
                                         "fingerprint": "plan"}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "cache.json").write_text(json.dumps(meta))
    write_failures(root / PLAN_FAILURES, list(plan_failures))
    for k, items in enumerate(shards):
        w = ShardWriter(root, k, {"fingerprint": "fp", "plan": f"p{k}", "shard": k, "num_shards": len(shards)}, 2)
        for item in items:
            w.add(item)
        w.close()
    return root


def clips() -> list[list[ClipResult | ClipFailure]]:
    held = encode_jpeg(image(100), 95)
    a = ClipResult(task(0, (0, 1)), [held, held, encode_jpeg(image(200), 95)],
                   np.array([[1, 2, 3], [4, 5, 6]], np.float16), 1.5, {"size": [12, 8]})
    b = ClipResult(task(1), None, np.array([[0, 0], [2, 2]], np.float16), 0.02, {})
    c = ClipResult(task(2, ()), [encode_jpeg(image(50), 95)], None, 0.5, {"size": [12, 8]})
    return [[a, ClipFailure(task(9), "no video decoded")], [b, c]]


def test_round_trip(tmp_path):
    root = make_cache(tmp_path / "c", clips(), [("m:3", "bad row")])
    summary = finalize(root)
    assert summary["counts"] == {"rows": 9, "cached": 3, "failed": 2, "audio": 2, "video": 2, "both": 1}
    assert summary["stats"]["mel_mean_per_bin"] == pytest.approx([1.2, 3.8])  # (1+2+3+0+0)/5, (4+5+6+2+2)/5
    assert (root / "failures.csv").read_text().splitlines() == ["path,reason", "m:3,bad row",
                                                                "c9.mp4,no video decoded"]
    cache = open_cache(root)
    assert cache.clip_ids() == ["c0", "c1", "c2"] and cache.multilabel and cache.label_names == ["a", "b"]
    a = cache.load("c0")
    assert a["frames"].shape == (3, 8, 12, 3) and a["labels"] == [0, 1] and a["label_names"] == ["a", "b"]
    assert np.abs(a["frames"][:, 0, 0, 0].astype(int) - [100, 100, 200]).max() <= 2
    assert a["logmel"].tolist() == [[1, 2, 3], [4, 5, 6]] and a["logmel"].dtype == np.float16
    assert cache.frames("c0", [2, 0, 2])[:, 0, 0, 0].tolist() == cache.frames("c0")[[2, 0, 2], 0, 0, 0].tolist()
    b, c = cache.load("c1"), cache.load("c2")
    assert b["frames"] is None and not b["has_video"] and c["logmel"] is None and c["labels"] == []
    row = cache.row("c2")
    assert (row.shard, row.row, row.frame_offset, row.mel_offset) == (1, 1, 0, 2)
    with h5(root, 0) as f:  # the held frame is stored once
        assert f["frame_spans"][()].tolist()[:2] == [[0, len(encode_jpeg(image(100), 95))]] * 2


def h5(root: Path, k: int):
    import h5py

    return h5py.File(shard_path(root, k), "r")


def test_atomic_writer_and_done_check(tmp_path):
    w = ShardWriter(tmp_path, 0, {"fingerprint": "fp", "plan": "p"}, 2)
    assert w.tmp.exists() and not w.final.exists()
    w.abort()
    assert not w.tmp.exists() and not w.final.exists()
    w = ShardWriter(tmp_path, 0, {"fingerprint": "fp", "plan": "p"}, 2)
    w.close()
    assert not w.tmp.exists() and shard_done(w.final, "fp", "p")
    assert not shard_done(w.final, "other", "p") and not shard_done(w.final, "fp", "q")
    assert not shard_done(tmp_path / "missing.h5", "fp", "p")
    assert fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1}) == "94a786c3662bc7be"


def test_incomplete_and_merge(tmp_path):
    shards = clips()
    root = make_cache(tmp_path / "c", shards)
    shard_path(root, 1).unlink()
    with pytest.raises(CacheError, match="1 of 2 shards missing"):
        finalize(root)
    other = make_cache(tmp_path / "d", shards)
    summary = merge_parts([root, other], tmp_path / "merged")
    assert summary["counts"]["cached"] == 3
    finalize(other)
    assert (tmp_path / "merged" / "index.csv").read_text() == (other / "index.csv").read_text()


def write_index(path: Path, rows: list[list[object]]) -> None:
    import csv

    from zorro_cli.data.layout import INDEX_FIELDS

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(INDEX_FIELDS)
        w.writerows(rows)


def test_column_index_gives_the_rows_of_index_csv(tmp_path):
    from zorro_cli.data.cache import ClipIndex, IndexRow

    write_index(tmp_path / "index.csv", [
        ["a", "dir/ä b.mp4", "train", "dog;cat", "3;0", 0, 0, 1, 1, 10.0, 50, 1001, 341, 256, 0, 0],
        ["b", "b.webm", "eval", "", "", 0, 1, 0, 1, 2.5, 13, 0, 256, 256, 50, 1001],
        ["c", "c.ogg", "train", "cat", "0", 1, 0, 1, 0, 0.1234567890123, 0, 13, 0, 0, 0, 0],
    ])
    index = ClipIndex(tmp_path / "index.csv")
    assert len(index) == 3
    assert index[0] == IndexRow("a", "dir/ä b.mp4", "train", (3, 0), 0, 0, True, True, 10.0, 50, 1001, 341, 256, 0, 0)
    assert index[1] == IndexRow("b", "b.webm", "eval", (), 0, 1, False, True, 2.5, 13, 0, 256, 256, 50, 1001)
    assert index[-1].duration_s == 0.1234567890123 and index[-1].labels == (0,) and not index[-1].has_video
    assert [r.clip_id for r in index] == ["a", "b", "c"] and [r.clip_id for r in index[1:]] == ["b", "c"]
    assert index.in_splits({"train"}).tolist() == [True, False, True] and index.in_splits(None).all()
    assert index.position("c") == 2
    with pytest.raises(IndexError):
        index[3]
    with pytest.raises(KeyError):
        index.position("zz")


def test_column_index_holds_a_large_dataset_in_numpy_buffers(tmp_path):
    """200k clips (AudioSet-like ids and paths): ~100 bytes per clip, all of it in numpy arrays."""
    from zorro_cli.data.cache import ClipIndex

    n = 200_000
    write_index(tmp_path / "index.csv", [
        [f"--{k:09d}_30000", f"audio/--{k:09d}_30000.mp4", "train", "x;y", f"{k % 527};{(k * 7) % 527}",
         k // 256, k % 256, 1, 1, 10.0, 50, 1001, 341, 256, (k % 256) * 50, (k % 256) * 1001] for k in range(n)])
    index = ClipIndex(tmp_path / "index.csv")
    arrays = [*index.columns.values(), index.split_code, index.has_audio, index.has_video, index.label_ids,
              index.label_offsets, index.clip_id.buf, index.clip_id.offsets, index.path.buf, index.path.offsets]
    assert all(isinstance(a, np.ndarray) for a in arrays)
    per_clip = sum(a.nbytes for a in arrays) / n
    assert per_clip < 150, per_clip
    assert index[123_456].clip_id == "--000123456_30000" and index[123_456].labels == (123_456 % 527, (123_456 * 7) % 527)

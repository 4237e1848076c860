"""End to end per manifest format: a sample in the published layout pointing at media named the usual way."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from zorro_cli.data.build import Job, preprocess
from zorro_cli.data.cache import open_cache
from zorro_cli.data.synth import render_audio, render_frames, write_clip
from zorro_cli.recipes import load_recipe


def media(path: Path, seconds: float, container: str = "mp4", video: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    rate = {"mp4": 16000, "wav": 44100}[container]
    frames = render_frames(1, round(seconds * 8), 48, 64, rng) if video else None
    write_clip(path, frames, 8, render_audio(1, seconds, rate, rng), container)


def run(fmt: str, manifest: Path, root: Path, out: Path) -> list[str]:
    """Preprocess with the tiny recipe; the failure report as ``path: reason`` lines."""
    preprocess(load_recipe("tiny").preprocess, Job((manifest,), fmt, root, out, workers=0, plain=True))
    with (out / "failures.csv").open(newline="") as fh:
        return [f"{r['path']}: {r['reason']}" for r in csv.DictReader(fh)]


def test_audioset(tmp_path):
    root = tmp_path / "media"
    media(root / "fullvideo_A.mp4", 4.0)  # full video: the window 1-3 s is decoded from it
    media(root / "cutclip_BB_30.mp4", 2.0)  # already cut to its 30-32 s segment
    (tmp_path / "eval_segments.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=3, num_segs=3, num_unique_labels=2, num_positive_labels=4\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'fullvideo_A, 1.000, 3.000, "/m/09x0r,/t/dd00088"\n'
        'cutclip_BB, 30.000, 32.000, "/m/09x0r"\n'
        'missing_CCC, 0.000, 10.000, "/m/09x0r"\n')
    (tmp_path / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/t/dd00088,"Male speech, man speaking"\n')
    failures = run("audioset", tmp_path / "eval_segments.csv", root, tmp_path / "c")
    cache = open_cache(tmp_path / "c")
    assert cache.multilabel and cache.label_names == ["Speech", "Male speech, man speaking"]
    full, cut = cache.row("fullvideo_A_1000"), cache.row("cutclip_BB_30000")
    assert (full.path, full.labels, full.split, full.n_frames) == ("fullvideo_A.mp4", (0, 1), "eval", 8)
    assert full.duration_s == pytest.approx(2.0, abs=0.01) and cut.duration_s == pytest.approx(2.0, abs=0.01)
    assert cut.path == "cutclip_BB_30.mp4"
    assert failures == ["missing_CCC: media not found under --media-root (tried missing_CCC_0, missing_CCC_0_10, "
                        "missing_CCC_0_10000, missing_CCC_0.000)"]


def test_vggsound(tmp_path):
    media(tmp_path / "video" / "---g-f_I2yQ_000001.mp4", 2.0)
    (tmp_path / "vggsound.csv").write_text("---g-f_I2yQ,1,people marching,test\n")
    failures = run("vggsound", tmp_path / "vggsound.csv", tmp_path / "video", tmp_path / "c")
    row = open_cache(tmp_path / "c").row("---g-f_I2yQ_000001")
    assert (row.split, row.labels, failures) == ("test", (0,), [])
    assert row.duration_s == pytest.approx(2.0, abs=0.05)  # a cut file shorter than 10 s: what it holds


def test_kinetics(tmp_path):
    media(tmp_path / "train" / "abseiling" / "-3B32lodo2M_000059_000069.mp4", 2.0)
    media(tmp_path / "train" / "air_drumming" / "--nQbRBEz2s_000104_000114.mp4", 2.0)
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                        "abseiling,-3B32lodo2M,59,69,train\n"
                                        "air drumming,--nQbRBEz2s,104,114,train\n")
    failures = run("kinetics", tmp_path / "train.csv", tmp_path / "train", tmp_path / "c")
    cache = open_cache(tmp_path / "c")
    assert failures == [] and cache.label_names == ["abseiling", "air drumming"] and not cache.multilabel
    assert cache.row("--nQbRBEz2s_000104_000114").path == "air_drumming/--nQbRBEz2s_000104_000114.mp4"


def test_esc50_audio_only(tmp_path):
    root = tmp_path / "ESC-50-master"
    media(root / "audio" / "1-100032-A-0.wav", 5.0, "wav", video=False)
    media(root / "audio" / "1-100038-A-14.wav", 5.0, "wav", video=False)
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("filename,fold,target,category,esc10,src_file,take\n"
                                             "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
                                             "1-100038-A-14.wav,2,1,chirping_birds,False,100038,A\n")
    failures = run("esc50", root / "meta" / "esc50.csv", root, tmp_path / "c")
    cache = open_cache(tmp_path / "c")
    rows = cache.index
    assert failures == []
    assert [(r.clip_id, r.split, r.has_audio, r.has_video) for r in rows] == [
        ("1-100032-A-0", "fold1", True, False), ("1-100038-A-14", "fold2", True, False)]
    assert rows[0].audio_frames == 501 and cache.load("1-100032-A-0")["frames"] is None

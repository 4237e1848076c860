"""Synthetic dataset: real container files, class-dependent sight and sound, deterministic, fast."""

from __future__ import annotations

import csv
import hashlib
import time

import numpy as np
import pytest

from zorro_cli.data.decode import DecodeRequest, decode_media
from zorro_cli.data.synth import PALETTE, class_pitch, make_synthetic_dataset


def digest(root) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_and_fast(tmp_path):
    t0 = time.monotonic()
    make_synthetic_dataset(tmp_path / "a", num_classes=2, clips_per_class=4, seed=7)
    assert time.monotonic() - t0 < 10
    make_synthetic_dataset(tmp_path / "b", num_classes=2, clips_per_class=4, seed=7)
    make_synthetic_dataset(tmp_path / "c", num_classes=2, clips_per_class=4, seed=8)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b and a != c and len(a) == 9


def test_manifest_and_containers(synth_dir):
    with (synth_dir / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and rows[0] == {"path": "class0/class0_000.mp4", "label": "class0", "split": "train"}
    assert [r["split"] for r in rows[:6]] == ["train"] * 4 + ["test"] * 2
    assert {r["path"].rsplit(".", 1)[1] for r in rows} == {"mp4", "mkv", "avi", "webm"}
    silent = decode_media(DecodeRequest(str(synth_dir / rows[-1]["path"]), fps=8, short_side=48))
    assert silent.audio is None and len(silent.frames) == 16


@pytest.mark.parametrize("k", [0, 7, 14, 21])
def test_the_class_is_seen_and_heard(synth_dir, k):
    with (synth_dir / "manifest.csv").open(newline="") as fh:
        row = list(csv.DictReader(fh))[k]
    c = int(row["label"][-1])
    d = decode_media(DecodeRequest(str(synth_dir / row["path"]), fps=8, short_side=48, sample_rate=16000))
    pixels = d.frames[0].reshape(-1, 3).astype(float)
    near = (np.linalg.norm(pixels[:, None, :] - PALETTE[None, :4], axis=2) < 50).sum(axis=0)
    assert near.argmax() == c  # the class colour covers most (a distractor of half the size may be there)
    spectrum = np.abs(np.fft.rfft(d.audio))
    peak = np.fft.rfftfreq(len(d.audio), 1 / 16000)[spectrum.argmax()]
    assert abs(peak / class_pitch(c) - 1) < 0.05  # and its pitch is heard

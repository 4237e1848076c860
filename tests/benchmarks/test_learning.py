"""The learning benchmark's data builder and a smoke run of ``benchmarks/learning.py --quick``.

The real figures come from the full run (benchmarks/README.md); here the script must run end to end on a
few real recordings, and the data it builds must be what it says: real speech, real handwritten digits,
one speaker held out, the test split's images from writers the training split never sees.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import learning_data  # noqa: E402


@pytest.fixture(scope="module")
def speech_dir(shared_data: Path) -> Path:
    path = shared_data / "speech_digits"
    if not path.is_dir():
        pytest.skip(f"speech recordings not found at {path}")
    return path


def test_built_clips_are_real_speech_and_digits_with_a_held_out_speaker(tmp_path: Path, speech_dir: Path) -> None:
    import av

    manifest = learning_data.build(tmp_path, speech_dir, per_digit=2)
    rows = list(csv.DictReader(manifest.open()))
    assert len(rows) == 10 * 5 * 2  # digits x speakers x recordings
    test = [r for r in rows if r["split"] == "test"]
    assert len(test) == 20 and all("/lucas_" in r["path"] for r in test)
    assert not any("/lucas_" in r["path"] for r in rows if r["split"] != "test")
    assert {r["label"] for r in rows} == {str(d) for d in range(10)}
    with av.open(str(tmp_path / rows[0]["path"])) as f:
        assert f.streams.video[0].codec_context.name == "h264" and f.streams.audio[0].codec_context.name == "aac"
        assert f.duration / 1e6 >= 0.95
    speech, rate = learning_data.read_wav(speech_dir / "0_george_0.wav")
    assert rate == 8000 and 0.1 < float(np.abs(speech).max()) <= 1.0


def test_rendered_digit_and_placed_speech() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((8, 8), np.uint8)
    img[2:6, 3:5] = 255
    frame = learning_data.render_image(img, 64, rng)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert frame.min() < 80 and frame.max() > 150  # dark ink on light paper
    clip = learning_data.place_speech(np.ones(4000, np.float32), 8000, 1.0, rng)
    assert len(clip) == 8000 and int((clip > 0.5).sum()) == 4000
    assert len(learning_data.place_speech(np.ones(9000, np.float32), 8000, 1.0, rng)) == 9000  # never cut


@pytest.mark.slow
def test_quick_run_of_the_benchmark(tmp_path: Path, speech_dir: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / "learning.py"), "--quick", "--work", str(tmp_path),
                           "--maskings", "zorro", "input_fusion", "--pretrain", "intra", "--readme", ""],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "**Masking ablation**" in out and "| zorro |" in out and "| input_fusion |" in out
    # the unimodal property holds even after a few steps; the targets on accuracy need the full run
    assert "met: zorro audio head with video missing" in out
    assert "| intra pretrain → finetune |" in out  # unimodal pre-training, then the audio-visual fine-tune
    assert "intra pre-training then fine-tuning vs from scratch" in out


def test_linear_baseline_is_reused_only_for_the_same_cache_and_windows(tmp_path: Path, monkeypatch) -> None:
    import json

    import learning

    from zorro_cli.recipes import load_recipe

    calls: list[float] = []

    def fake(cache: Path, recipe) -> dict[str, float]:
        calls.append(recipe.data.audio_frames)
        return {"audio": 0.5, "video": 0.25, "both": 0.75}

    monkeypatch.setattr(learning, "linear_baseline", fake)
    cache, record = tmp_path / "cache", tmp_path / "linear.json"
    cache.mkdir()
    (cache / "cache.json").write_text(json.dumps({"fingerprint": "aaaa"}))
    small = load_recipe("small")
    assert learning.reused_linear_baseline(cache, small, record) == {"audio": 0.5, "video": 0.25, "both": 0.75}
    assert learning.reused_linear_baseline(cache, small, record)["both"] == 0.75 and len(calls) == 1
    learning.reused_linear_baseline(cache, load_recipe("small", ["data.audio_frames=64"]), record)  # other windows
    (cache / "cache.json").write_text(json.dumps({"fingerprint": "bbbb"}))  # another cache
    learning.reused_linear_baseline(cache, small, record)
    assert calls == [96, 64, 96]


def test_pretraining_comparisons_are_not_targets() -> None:
    import learning

    heads = {"audio": 0.5, "video": 0.5, "fusion": 0.5, "global": 0.5}
    table = {"zorro": {"both": heads}, "intra pretrain → finetune": {"both": {h: 0.4 for h in heads}}}
    scores = {"zorro": {"both": {"audio": np.zeros(2)}, "video missing": {"audio": np.zeros(2)}}}
    table["zorro"]["video missing"] = heads
    lines = learning.targets(table, scores, {"audio": 0.4, "video": 0.4, "both": 0.4})
    assert [ln.split(":")[0] for ln in lines] == ["met"] * 5 + ["compared (not a target)"]
    assert lines[-1].endswith("(mean -0.100)")

"""Unimodal self-supervised pre-training (``train.contrastive: intra``): the loss against literal values,
two seeded views per clip, and ``zorro pretrain`` on one modality followed by an audio-visual fine-tune."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.data.dataset import ClipDataset
from zorro_cli.model.losses import intra_contrastive_loss

TINY = dict(audio_frames=64, frames=4, image_size=32)
FAST = ["data.val_split=test", "data.val_holdout=0", "log.every=1", "train.warmup_steps=2", "train.lr=2e-3", "eval.batch_size=8"]


def test_intra_loss_literal() -> None:
    eye = torch.eye(3)
    # view 1 == view 2 == one-hot rows, τ = 1: logits = I, each row's CE = ln(e + 2) - 1
    total, parts = intra_contrastive_loss({"audio": eye, "video": 2 * eye}, {"audio": eye, "video": eye}, 1.0,
                                          gather=False)
    expected = math.log(math.e + 2) - 1  # 0.551444...
    assert set(parts) == {"audio_audio", "video_video"}
    assert parts["audio_audio"].item() == pytest.approx(expected, abs=1e-6)
    assert parts["video_video"].item() == pytest.approx(expected, abs=1e-6)  # cosine: the scale does not matter
    assert total.item() == pytest.approx(2 * expected, abs=1e-6)
    one, _ = intra_contrastive_loss({"audio": eye, "video": eye}, {"audio": eye}, 1.0, gather=False)
    assert one.item() == pytest.approx(expected, abs=1e-6)  # only modalities both views have
    with pytest.raises(ValueError, match="audio or video"):
        intra_contrastive_loss({"fusion": eye}, {"fusion": eye}, 1.0, gather=False)


def test_two_views_are_seeded_independent_draws(tiny_cache: Path) -> None:
    one = ClipDataset(tiny_cache, "train", **TINY)
    two = ClipDataset(tiny_cache, "train", views=2, **TINY)
    item, again = two[3], two[3]
    for m in ("audio", "video"):
        assert torch.equal(item[m], one[3][m])  # the first view is what a one-view run reads
        assert torch.equal(item[m + "2"], again[m + "2"])  # seeded: (seed, epoch, clip)
        assert item[m + "2"].shape == item[m].shape and not torch.equal(item[m + "2"], item[m])
    assert "audio2" not in one[3]
    with pytest.raises(ValueError, match="views"):
        ClipDataset(tiny_cache, "test", mode="eval", views=2, **TINY)


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["audio", "video"])
def test_unimodal_pretraining_then_audio_visual_finetune(tmp_path: Path, tiny_cache: Path, modality: str) -> None:
    runner = CliRunner()
    pre = tmp_path / f"{modality}-ssl"
    res = runner.invoke(app, ["pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(pre),
                              "train.contrastive=intra", f"data.modalities=[{modality}]", "train.max_steps=6",
                              *FAST])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (pre / "metrics.jsonl").read_text().splitlines()]
    assert {k for k in rows[0] if k.startswith("loss/")} == {f"loss/{modality}_{modality}"}
    assert all(math.isfinite(r["loss"]) for r in rows if "loss" in r)
    val = [r for r in rows if f"val/{modality}_view_top1" in r]
    assert val and 0.0 <= val[-1][f"val/{modality}_view_top1"] <= 1.0 and math.isfinite(val[-1]["val/contrastive_loss"])
    ft = tmp_path / "ft"
    res = runner.invoke(app, ["finetune", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(ft),
                              "--init", str(pre), "train.max_steps=2", *FAST])
    assert res.exit_code == 0, res.output
    report = json.loads((ft / "run.json").read_text())["init_report"]
    assert report["kind"] == "zorro" and report["loaded"] > 20  # the pre-trained stream's weights
    av = tmp_path / "av"  # audio-visual pre-training can start from the unimodal one too
    res = runner.invoke(app, ["pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(av),
                              "--init", str(pre), "train.max_steps=2", *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads((av / "run.json").read_text())["init_report"]["loaded"] > 20


def test_audio_visual_contrastive_on_one_modality_is_one_line(tmp_path: Path, tiny_cache: Path) -> None:
    res = CliRunner().invoke(app, ["pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "--out",
                                   str(tmp_path / "r"), "data.modalities=[audio]", "train.max_steps=1"])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "train.contrastive" in line and "intra" in line and "Traceback" not in line


def test_validation_metrics_literal() -> None:
    from zorro_cli.evaluation.predict import contrastive_metrics, intra_metrics

    eye, swapped = torch.eye(3), torch.eye(3)[[1, 0, 2]]
    expected = math.log(math.e + 2) - 1
    av = contrastive_metrics({"audio": eye, "video": 3 * eye}, 1.0)
    assert av["contrastive_loss"] == pytest.approx(expected, abs=1e-6) and av["a2v_top1"] == av["v2a_top1"] == 1.0
    two = intra_metrics({"audio": eye, "video": eye}, {"audio": eye, "video": swapped}, 1.0)
    assert two["audio_view_top1"] == 1.0 and two["video_view_top1"] == pytest.approx(1 / 3)
    assert two["contrastive_loss"] > 2 * expected  # the swapped video views cost more than matched ones

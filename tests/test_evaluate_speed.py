"""Evaluation at speed: frames read once for all views, the run's workers / batch / precision, progress
lines off a terminal; the same scores whatever the number of workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.commands import evaluate
from zorro_cli.data.cache import open_cache
from zorro_cli.data.views import audio_views, video_views, window_span
from zorro_cli.evaluation.predict import autocast_dtype
from zorro_cli.model import save_pretrained
from zorro_cli.model.zorro import Zorro
from zorro_cli.recipes import load_recipe
from zorro_cli.train.setup import build_model_config, model_inputs


def test_video_views_read_each_frame_once() -> None:
    calls: list[list[int]] = []

    def read(indices: list[int]) -> np.ndarray:
        calls.append(indices)
        return np.stack([np.full((4, 6, 3), i, np.uint8) for i in indices])  # frame i is all i

    # 10 stored frames at 2 fps; windows of 3 frames every 2 slots centred at 1.5 s and 3.5 s:
    # starts round(1.5*2 - 3) = 0 and round(3.5*2 - 3) = 4 -> [0, 2, 4] and [4, 6, 8]
    x = video_views(read, 10, [1.5, 3.5], fps=2.0, frames=3, frame_stride=2, size=(4, 4), crops=3)
    assert calls == [[0, 2, 4, 6, 8]]  # one read, frame 4 (in both windows) once
    assert x.shape == (6, 3, 3, 4, 4)  # 2 windows x 3 crops, [3, T, S, S]
    std = torch.tensor([0.229, 0.224, 0.225]) * 255
    mean = torch.tensor([0.485, 0.456, 0.406]) * 255
    raw = x[:, :, :, 0, 0] * std.view(1, 3, 1) + mean.view(1, 3, 1)  # un-normalised values per (view, T)
    np.testing.assert_allclose(raw[:, 0].numpy(), [[0, 2, 4]] * 3 + [[4, 6, 8]] * 3, atol=1e-3)


def test_video_views_equal_one_crop_at_a_time() -> None:
    """The batched crops and the in-place normalisation give what ``crop_resize`` + ``normalize_video``
    give view by view (the code ``ClipDataset`` ran before)."""
    from zorro_cli.data import augment as aug

    frames = np.random.default_rng(0).integers(0, 256, (10, 72, 96, 3), dtype=np.uint8)
    x = video_views(lambda idx: frames[idx], 10, [1.5, 3.5], 2.0, 4, 1, (64, 64), 3)
    ref = []
    for c in (1.5, 3.5):
        clip = torch.from_numpy(frames[aug.frame_indices(aug.window_start(c, 2.0, 4, 10), 4, 1, 10)]).permute(0, 3, 1, 2)
        ref += [aug.normalize_video(aug.crop_resize(clip, box, (64, 64))) for box in aug.eval_boxes(72, 96, 3)]
    torch.testing.assert_close(x, torch.stack(ref), atol=1e-5, rtol=0)


def test_loading_skips_the_random_init_and_restores_it(tmp_path: Path) -> None:
    from zorro_cli.model import build_model, load_pretrained

    init = torch.nn.init.trunc_normal_
    model = build_model("zorro_vit_tiny", num_classes=3).eval()
    save_pretrained(model, tmp_path / "m")
    back = load_pretrained(tmp_path / "m")
    assert torch.nn.init.trunc_normal_ is init
    x = model.example_inputs(2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(back(**x), model(**x), atol=0, rtol=0)


def test_audio_views_and_span() -> None:
    mel = torch.arange(20, dtype=torch.float32).view(1, 20)  # F=1, 20 frames at 10 frames/s
    v = audio_views(mel, [0.5, 1.5], audio_rate=10.0, length=4, crops=3)
    assert v.shape == (6, 1, 1, 4)
    assert v[0, 0, 0].tolist() == [3, 4, 5, 6] and v[3, 0, 0].tolist() == [13, 14, 15, 16]
    assert window_span(("audio", "video"), 64, 100.0, 4, 2, 4.0) == 2.0
    assert window_span(("audio",), 64, 100.0, 4, 2, 4.0) == 0.64


def test_autocast_dtype() -> None:
    assert autocast_dtype("auto", "bf16") is torch.bfloat16 and autocast_dtype("auto", "no") is None
    assert autocast_dtype("auto", None) is None and autocast_dtype("fp32", "bf16") is None
    assert autocast_dtype("fp16", "no") is torch.float16
    with pytest.raises(ValueError, match="--precision: expected one of auto, fp32, bf16, fp16"):
        autocast_dtype("int8", None)


@pytest.fixture(scope="module")
def bf16_checkpoint(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model saved as a run trained in bf16 would be (``precision`` in config.json)."""
    recipe = load_recipe("tiny", ["train.precision=bf16"])
    cache = open_cache(tiny_cache)
    torch.manual_seed(0)
    model = Zorro(build_model_config(recipe, "finetune", int(cache.settings["n_mels"]), len(cache.label_names)))
    out = tmp_path_factory.mktemp("bf16") / "ckpt"
    save_pretrained(model, out, extra={"labels": cache.label_names, "precision": "bf16",
                                       **model_inputs(recipe, cache).to_config()})
    return out


def test_evaluate_runs_in_the_training_precision(bf16_checkpoint: Path, tiny_cache: Path, tmp_path: Path) -> None:
    runs = {}
    for precision in ("auto", "fp32"):
        runs[precision] = evaluate.run(checkpoint=bf16_checkpoint, data=tiny_cache, split="train", crops=1,
                                       precision=precision, dump=tmp_path / f"{precision}.npz")
    assert runs["auto"]["precision"] == "bfloat16" and runs["fp32"]["precision"] == "fp32"
    a, b = (np.load(tmp_path / f"{p}.npz")["scores_global"] for p in ("auto", "fp32"))
    assert not np.array_equal(a, b)  # bf16 really ran
    np.testing.assert_allclose(a, b, atol=3e-2)
    assert (runs["auto"]["workers"], runs["auto"]["batch_size"]) == (evaluate.DEFAULT_WORKERS, evaluate.DEFAULT_BATCH)


def test_workers_batch_and_progress_lines(bf16_checkpoint: Path, tiny_cache: Path, tmp_path: Path) -> None:
    """Workers change nothing but speed; off a terminal progress is plain lines with the rate and ETA."""
    runner = CliRunner()
    scores = {}
    for workers in ("0", "2"):
        res = runner.invoke(app, ["evaluate", "--checkpoint", str(bf16_checkpoint), "--data", str(tiny_cache),
                                  "--split", "train", "--workers", workers, "--batch-size", "5", "--precision",
                                  "fp32", "--dump", str(tmp_path / f"{workers}.npz")])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout.strip().splitlines()[-1])
        assert (out["workers"], out["batch_size"]) == (int(workers), 5)
        lines = [x for x in res.stderr.splitlines() if x.startswith("evaluate: ")]
        assert lines and lines[-1].startswith(f"evaluate: {out['num_clips']}/{out['num_clips']} clips, ")
        assert "clips/s, ETA 0 s" in lines[-1] and "failed" not in lines[-1]
        scores[workers] = np.load(tmp_path / f"{workers}.npz")["scores_global"]
    np.testing.assert_array_equal(scores["0"], scores["2"])


def test_evaluate_takes_workers_and_batch_from_the_run(tiny_cache: Path, tmp_path: Path) -> None:
    from zorro_cli.commands import finetune

    out = tmp_path / "run"
    finetune.run(recipe=load_recipe("tiny", ["train.max_steps=1", "data.val_split=null", "eval.batch_size=3"]),
                 data=tiny_cache, out=out)
    assert evaluate.run_settings(out) == (0, 3)  # tiny: data.workers 0
    result = evaluate.run(checkpoint=out, data=tiny_cache, crops=1)
    assert (result["workers"], result["batch_size"], result["precision"]) == (0, 3, "fp32")
    assert evaluate.run_settings(tmp_path / "nothing") == (None, None)

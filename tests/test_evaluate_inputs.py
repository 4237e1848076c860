"""`zorro evaluate` reads a checkpoint's inputs as training wrote them (``ModelInputs``), mel_norm included."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from zorro_cli.commands import evaluate
from zorro_cli.data.cache import open_cache
from zorro_cli.data.dataset import ClipDataset
from zorro_cli.data.inputs import ModelInputs
from zorro_cli.evaluation.predict import predict
from zorro_cli.model import save_pretrained
from zorro_cli.model.zorro import Zorro
from zorro_cli.recipes import load_recipe
from zorro_cli.train.setup import build_model_config, model_inputs


def test_model_inputs_round_trip_through_config(tiny_cache: Path) -> None:
    recipe = load_recipe("tiny", ["data.mel_norm=per_bin", "data.frame_stride=2"])
    inputs = model_inputs(recipe, open_cache(tiny_cache))
    back = ModelInputs.from_config(inputs.to_config())
    assert back == inputs and back.mel_norm == "per_bin" and back.frame_stride == 2
    assert back.preprocessing["mel_mean_per_bin"] == inputs.to_config()["preprocessing"]["mel_mean_per_bin"]
    old = ModelInputs.from_config({"model": {"audio_frames": 32, "frames": 2, "image_size": 16}})
    assert (old.audio_frames, old.frames, old.image_size, old.frame_stride, old.mel_norm) == (32, 2, 16, 1, "global")


def test_a_per_bin_model_is_evaluated_with_per_bin_statistics(tiny_cache: Path, tmp_path: Path) -> None:
    """Before ModelInputs, `zorro evaluate` built its dataset without the checkpoint's mel_norm, so a
    ``per_bin`` model was fed globally normalised log-mel (the ``global`` scores below)."""
    recipe = load_recipe("tiny", ["data.mel_norm=per_bin"])
    cache = open_cache(tiny_cache)
    torch.manual_seed(0)
    model = Zorro(build_model_config(recipe, "finetune", int(cache.settings["n_mels"]), len(cache.label_names)))
    inputs = model_inputs(recipe, cache)
    save_pretrained(model, tmp_path / "ckpt", extra={"labels": cache.label_names, **inputs.to_config()})

    evaluate.run(checkpoint=tmp_path / "ckpt", data=tiny_cache, split="train", crops=1, dump=tmp_path / "p.npz")
    got = np.load(tmp_path / "p.npz")["scores_global"]

    acc = Accelerator(cpu=True)
    expected = {}
    for norm in ("per_bin", "global"):
        ds = ClipDataset.from_inputs(cache, replace(inputs, mel_norm=norm), "train", "eval", eval_crops=1)
        expected[norm] = predict(model.eval(), ds, acc, 16, cache.multilabel)[1]["global"]
    assert not np.allclose(expected["per_bin"], expected["global"], atol=1e-4)  # the two really differ
    np.testing.assert_allclose(got, expected["per_bin"], atol=1e-5)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got, expected["global"], atol=1e-5)

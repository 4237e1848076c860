"""Schedule and parameter groups against literal values."""

from __future__ import annotations

import pytest

from zorro_cli.model import build_model
from zorro_cli.train.optim import lr_at, parameter_groups


def test_warmup_then_cosine_literal_values() -> None:
    got = [lr_at(s, 1.0, warmup_steps=2, total_steps=6, min_lr=0.0) for s in range(7)]
    # warm-up: 1/2, 2/2; cosine over 4 steps: cos(0)=1 -> 1, cos(pi/4) -> .8536, .5, .1464, 0
    assert got == pytest.approx([0.5, 1.0, 1.0, 0.8535534, 0.5, 0.1464466, 0.0], abs=1e-6)
    assert lr_at(100, 1.0, 2, 6, min_lr=0.1) == pytest.approx(0.1)
    assert lr_at(0, 3e-4, 0, 10) == pytest.approx(3e-4)


def test_no_decay_on_norms_biases_tables_and_tokens() -> None:
    model = build_model("zorro_vit_tiny", num_classes=3)
    decay, no_decay = parameter_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    d = {names[id(p)] for p in decay["params"]}
    assert {"fusion", "decoder.queries", "audio_tokenizer.pos", "video_tokenizer.pos_space",
            "video_tokenizer.pos_time", "backbone.norm.weight", "backbone.blocks.0.attn.qkv.bias"} <= nd
    assert {"backbone.blocks.0.attn.qkv.weight", "audio_tokenizer.proj.weight", "heads.heads.audio.weight"} <= d
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert len(d) + len(nd) == sum(p.requires_grad for p in model.parameters())  # τ is fixed by default


def test_hip_latents_get_no_decay() -> None:
    model = build_model("zorro_hip_tiny", num_classes=3)
    _, no_decay = parameter_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    assert {"backbone.levels.0.latents.audio", "backbone.levels.0.latents.video",
            "backbone.levels.0.latents.fusion"} <= nd

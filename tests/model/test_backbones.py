"""Backbone selection by config: Swin/HiP options (derived, validated, round-tripped) and the paper presets."""

from __future__ import annotations

import json

import pytest
import torch

from zorro_cli.model import ZorroConfig, build_model, load_vit_weights, preset_config
from zorro_cli.model.backbone_options import resolve_hip, resolve_swin
from zorro_cli.model.hip import HiPBackbone
from zorro_cli.model.swin import SwinBackbone
from zorro_cli.model.vit import ViTBackbone
from zorro_cli.model.zorro import Zorro


def test_swin_options_derive_from_dim_and_depth() -> None:
    t, problems = resolve_swin(ZorroConfig(backbone="swin"))  # dim 768, depth 12: Swin-T
    assert problems == []
    assert (t.widths, t.depths, t.heads) == ((96, 192, 384, 768), (2, 2, 6, 2), (3, 6, 12, 24))
    b, _ = resolve_swin(preset_config("zorro_swin_b"))  # Swin-B
    assert (b.widths, b.depths, b.heads) == ((128, 256, 512, 1024), (2, 2, 18, 2), (4, 8, 16, 32))
    assert (b.audio_window, b.video_window) == ((8, 10), (8, 7, 7))


def test_hip_options_derive_from_dim_and_depth() -> None:
    h, problems = resolve_hip(preset_config("zorro_hip_b"))  # HiP-16-like
    assert problems == []
    assert (h.widths, h.depths, h.heads) == ((128, 256, 512), (2, 2, 18), (4, 8, 16))
    assert (h.audio_groups, h.video_groups, h.latents, h.fusion_latents) == (
        (16, 4, 1), (16, 4, 1), (128, 256, 256), (8, 8, 8))
    assert resolve_hip(ZorroConfig(backbone="hip"))[1] == []


@pytest.mark.parametrize(("backbone", "cls"), [("vit", ViTBackbone), ("swin", SwinBackbone), ("hip", HiPBackbone)])
def test_the_config_alone_selects_the_backbone(backbone: str, cls: type) -> None:
    tiny = preset_config(f"zorro_{backbone}_tiny" if backbone != "vit" else "zorro_vit_tiny")
    model = Zorro(ZorroConfig.from_dict(json.loads(json.dumps(tiny.to_dict()))))  # as a recipe would
    assert isinstance(model.backbone, cls) and model.config == tiny


@pytest.mark.parametrize("name", ["zorro_swin_b", "zorro_hip_b", "zorro_vit_b16"])
def test_paper_presets_run_at_the_paper_input_shapes(name: str) -> None:
    with torch.device("meta"):  # shapes only, no compute
        model = build_model(name)
        x = model.example_inputs(batch=1)
        tokens = model.tokenize(**x)
        logits = model(**x)
    assert tuple(x["audio"].shape) == (1, 1, 128, 640) and tuple(x["video"].shape) == (1, 3, 8, 224, 224)
    assert {k: v.shape[1] for k, v in tokens.items()} == (
        {"audio": 320, "fusion": 8, "video": 1568} if name == "zorro_vit_b16"
        else {"audio": 5120, "fusion": 8, "video": 12544})
    assert {k: tuple(v.shape) for k, v in logits.items()} == {k: (1, 527) for k in ("audio", "video", "fusion", "global")}


@pytest.mark.parametrize("backbone", ["vit", "swin", "hip"])
def test_a_backbone_override_on_a_preset_picks_that_backbones_preset_of_the_same_size(backbone: str) -> None:
    # a recipe's model.backbone on the tiny preset, with the tiny recipe's other overrides
    cfg = preset_config("zorro_vit_tiny", backbone=backbone, fusion_tokens=4, n_mels=32, audio_frames=64)
    assert cfg == preset_config(f"zorro_{backbone}_tiny", fusion_tokens=4)
    assert preset_config("zorro_swin_b", backbone=backbone) == preset_config(
        {"vit": "zorro_vit_b16", "swin": "zorro_swin_b", "hip": "zorro_hip_b"}[backbone])


def test_preset_overrides_merge_extra_and_rederive() -> None:
    cfg = preset_config("zorro_swin_tiny", depth=6, extra={"head_dim": 8})
    o, _ = resolve_swin(cfg)
    assert cfg.extra["audio_window"] == [4, 4] and o.depths == (2, 4) and o.heads == (4, 8)


@pytest.mark.parametrize(("preset", "extra"), [("zorro_swin_tiny", {"embed_dim": 16}),
                                               ("zorro_hip_tiny", {"widths": [16, 48]})])
def test_a_last_width_other_than_dim_is_projected_to_dim(preset: str, extra: dict) -> None:
    model = build_model(preset, extra=extra).eval()
    assert isinstance(model.backbone.proj, torch.nn.Linear) and model.backbone.proj.out_features == 64
    with torch.no_grad():
        feats = model.forward_features(**model.example_inputs(batch=1))
    assert {t.shape[-1] for t in feats.values()} == {64}


@pytest.mark.parametrize(("kw", "message"), [
    (dict(backbone="swin", extra={"window": [8, 8]}), "extra.window: not an option of backbone 'swin'; did you mean"),
    (dict(backbone="vit", extra={"stages": 4}), "extra.stages: not an option of backbone 'vit'"),
    (dict(backbone="swin", extra={"depths": [2, 2, 2, 2]}), "depth: 12 is not the sum of extra.depths [2, 2, 2, 2] (8)"),
    (dict(backbone="swin", depth=5), "depth: 5 is too small for 4 stages"),
    (dict(backbone="swin", extra={"audio_window": [8]}), "extra.audio_window: expected 2 positive integers, got [8]"),
    (dict(backbone="swin", extra={"head_dim": 40}), "extra.head_dim: width 96 is not divisible by head_dim 40"),
    (dict(backbone="swin", dim=100, heads=4), "dim: 100 is not divisible by 2**3"),
    (dict(backbone="hip", extra={"video_groups": [16, 64, 1], "latents": [2, 2, 2]}),
     "extra.video_groups: level 2 has 64 groups but level 1 gives only 32 latents"),
    (dict(backbone="hip", extra={"levels": 0}), "extra.levels: expected a positive integer, got 0"),
    (dict(backbone="resnet"), "backbone: expected one of vit, swin, hip, got 'resnet'"),
])
def test_bad_backbone_options_are_reported_with_their_key(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match="invalid ZorroConfig") as e:
        ZorroConfig(**kw)
    assert message in str(e.value)


def test_too_few_tokens_for_the_hip_groups_raises_clearly() -> None:
    model = build_model("zorro_hip_tiny", extra={"audio_groups": [4, 1]})
    with pytest.raises(ValueError, match="audio has 2 tokens, fewer than its 4 groups"):
        model.encode(audio=torch.randn(1, 1, 8, 16))


def test_vit_initialisation_refuses_other_backbones(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs backbone 'vit', this model's is 'swin'"):
        load_vit_weights(build_model("zorro_swin_tiny"), tmp_path / "vit.pt")


class _Encode(torch.nn.Module):
    def __init__(self, model: Zorro) -> None:
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.encode(audio=audio, video=video).values())


@pytest.mark.parametrize("preset", ["zorro_swin_tiny", "zorro_hip_tiny"])
def test_swin_and_hip_trace_with_torch_export_and_a_dynamic_batch(preset: str) -> None:
    """ONNX export goes through ``torch.export``: the window geometry must come from the cache that the
    builder fills for the configured shapes, not from index arithmetic traced at export time."""
    torch.manual_seed(0)
    model = build_model(preset, num_classes=0).eval()
    x = model.example_inputs(batch=2)
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(_Encode(model), (x["audio"], x["video"]),
                                  dynamic_shapes=({0: batch}, {0: batch}))
    y = model.example_inputs(batch=3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for got, want in zip(program.module()(y["audio"], y["video"]), _Encode(model)(y["audio"], y["video"]), strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("preset", ["zorro_vit_tiny", "zorro_swin_tiny", "zorro_hip_tiny"])
def test_backbones_accept_sdpa_outputs_with_gpu_strides(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA's SDPA kernels return ``[B,H,L,D]`` views of ``[B,L,H,D]`` memory; no backbone may assume more.

    Regression: Swin's window attention called ``.view`` on the SDPA output and failed on every GPU.
    """
    torch.manual_seed(0)
    model = build_model(preset, masking="zorro").eval()
    x = model.example_inputs(2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.encode(**x)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def gpu_like(*args: object, **kwargs: object) -> torch.Tensor:
        out = sdpa(*args, **kwargs)
        return out.transpose(-3, -2).contiguous().transpose(-3, -2) if out.dim() == 4 else out

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", gpu_like)
    with torch.no_grad():
        got = model.encode(**x)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-6)

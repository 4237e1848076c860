"""Backbone registry, the ViT size ladder (timm-loadable), and the recipe keys that size a model."""

from __future__ import annotations

import sys
import types

import pytest
import timm
import torch

from zorro_cli.model import ZorroConfig, build_model, load_vit_weights
from zorro_cli.model.layers import Block
from zorro_cli.model.presets import PRESETS, counterpart, preset_config
from zorro_cli.model.registry import BACKBONE_MODULES, BackboneSpec, Preset, backbone_names, backbone_spec
from zorro_cli.recipes import RecipeError, load_recipe

# preset -> (timm model name, dim, depth, heads): the ViT ladder timm users know
LADDER = {"zorro_vit_ti16": ("vit_tiny_patch16_224", 192, 12, 3), "zorro_vit_s16": ("vit_small_patch16_224", 384, 12, 6),
          "zorro_vit_b16": ("vit_base_patch16_224", 768, 12, 12)}


def test_every_backbone_is_registered_once_with_its_presets() -> None:
    assert backbone_names() == ("vit", "swin", "hip")
    for name in backbone_names():
        spec = backbone_spec(name)
        assert spec.name == name and spec.presets
        for preset in spec.presets:
            assert PRESETS[preset]["backbone"] == name
    assert [n for n in backbone_names() if backbone_spec(n).vit_init] == ["vit"]


@pytest.mark.parametrize("preset", sorted(LADDER))
def test_vit_ladder_shapes(preset: str) -> None:
    _, dim, depth, heads = LADDER[preset]
    c = preset_config(preset)
    assert (c.dim, c.depth, c.heads, c.mlp_ratio) == (dim, depth, heads, 4.0)
    # [paper] input shapes: 8 x 40 audio tokens, 8 x 14 x 14 video tokens
    assert (c.n_mels, c.audio_frames, c.audio_patch) == (128, 640, (16, 16))
    assert (c.frames, c.image_size, c.video_patch) == (8, (224, 224), (1, 16, 16))


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(LADDER))
def test_vit_ladder_loads_timm_weights(tmp_path, preset: str) -> None:
    name, dim, depth, _ = LADDER[preset]
    torch.manual_seed(0)
    vit = timm.create_model(name, pretrained=False, num_classes=0)  # timm's own architecture, no download
    path = tmp_path / "vit.pt"
    torch.save(vit.state_dict(), path)
    model = build_model(preset, num_classes=3, proj_dim=0)
    report = load_vit_weights(model, path)
    assert f"backbone.blocks.{depth - 1}.mlp.fc2.weight" in report.loaded
    own = model.state_dict()
    for key in ("blocks.0.attn.qkv.weight", f"blocks.{depth - 1}.mlp.fc1.bias", "norm.weight"):
        assert torch.equal(own["backbone." + key], vit.state_dict()[key])
    # one ViT block of ours computes what timm's computes
    x = torch.randn(2, 5, dim)
    block = model.backbone.blocks[0]
    assert isinstance(block, Block)
    with torch.no_grad():
        from zorro_cli.model.layers import dense_plan
        from zorro_cli.model.masks import TokenLayout

        layout = TokenLayout(audio=5, fusion=0, video=0)
        ours = block(x, dense_plan(layout, [(0, 5, ["audio"])]))
        assert torch.allclose(ours, vit.blocks[0](x), atol=1e-5)


def test_mini_preset_takes_the_first_blocks_of_ti16(tmp_path) -> None:
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    path = tmp_path / "ti.pt"
    torch.save(vit.state_dict(), path)
    model = build_model("zorro_vit_mini", num_classes=10, proj_dim=0)
    report = load_vit_weights(model, path)
    assert "blocks.4.attn.qkv.weight" in report.ignored
    assert torch.equal(model.state_dict()["backbone.blocks.3.attn.proj.weight"], vit.state_dict()["blocks.3.attn.proj.weight"])


def test_counterparts_follow_the_size() -> None:
    assert counterpart("zorro_vit_tiny", "swin") == "zorro_swin_tiny"
    assert counterpart("zorro_vit_b16", "hip") == "zorro_hip_b"
    assert counterpart("zorro_vit_mini", "swin") == "zorro_vit_mini"  # no Swin of that size


def test_unknown_backbone_option_names_the_nearest() -> None:
    with pytest.raises(ValueError, match=r"extra.stagse: not an option of backbone 'swin'; did you mean 'stages'\?"):
        preset_config("zorro_swin_tiny", extra={"stagse": 2})
    with pytest.raises(ValueError, match=r"extra\.stages: not an option of backbone 'vit'"):
        preset_config("zorro_vit_tiny", extra={"stages": 2})


def test_patch_sizes_must_tile_the_inputs() -> None:
    with pytest.raises(ValueError) as err:
        ZorroConfig(n_mels=100, audio_frames=640, image_size=200)
    assert str(err.value) == (
        "invalid ZorroConfig: audio_patch: n_mels 100 is not a whole number of 16-wide patches (audio_patch [16, 16]); "
        "video_patch: image_size 200 is not a whole number of 16-wide patches (video_patch [1, 16, 16])")
    with pytest.raises(ValueError, match=r"mlp_ratio: expected in \(0, 64\], got nan"):
        ZorroConfig(mlp_ratio=float("nan"))


def test_a_new_backbone_is_one_module_and_one_registry_line(monkeypatch) -> None:
    """What adding a backbone takes: a module with ``SPEC`` and one ``BACKBONE_MODULES`` line."""
    module = types.ModuleType("toy_backbone")
    vit = backbone_spec("vit")
    module.SPEC = BackboneSpec(name="toy", build=vit.build, option_keys=("gain",),  # type: ignore[attr-defined]
                               presets={"zorro_toy": Preset("toy", dict(dim=32, depth=1, heads=2, n_mels=32,
                                                                         audio_frames=32, frames=2, image_size=32))})
    monkeypatch.setitem(sys.modules, "toy_backbone", module)
    monkeypatch.setitem(BACKBONE_MODULES, "toy", "toy_backbone")
    backbone_spec.cache_clear()
    try:
        c = ZorroConfig(backbone="toy", dim=32, depth=1, heads=2, extra={"gain": 2})
        assert c.backbone == "toy"
        model = build_model("zorro_vit_tiny", backbone="toy", dim=32, depth=1, heads=2, num_classes=2)
        out = model(**model.example_inputs(batch=2))
        assert out["global"].shape == (2, 2)
        with pytest.raises(ValueError, match=r"extra\.gian: not an option of backbone 'toy'; did you mean 'gain'"):
            ZorroConfig(backbone="toy", extra={"gian": 1})
    finally:
        backbone_spec.cache_clear()


def test_recipe_keys_size_the_model() -> None:
    r = load_recipe("tiny", ["model.dim=96", "model.depth=3", "model.heads=3", "model.mlp_ratio=3",
                             "model.audio_patch=[16,8]", "model.video_patch=[2,16,16]"])
    c = r.model.to_config(r.data, r.preprocess.n_mels, num_classes=5, contrastive=False)
    assert (c.dim, c.depth, c.heads, c.mlp_ratio, c.audio_patch, c.video_patch) == (96, 3, 3, 3.0, (16, 8), (2, 16, 16))
    assert (c.num_classes, c.proj_dim, c.n_mels, c.audio_frames) == (5, 0, 32, 64)
    swin = load_recipe("tiny", ["model.backbone=swin", "model.extra={stages: 2, head_dim: 8}"])
    assert swin.model.to_config(swin.data, 32, 0, True).extra["head_dim"] == 8


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.heads=5"], "override 'model.heads=5': model.heads: dim 64 is not divisible by heads 5"),
    (["model.dim=0"], "model.dim: expected >= 1, got 0"),
    (["model.mlp_ratio=.nan"], "model.mlp_ratio: expected a finite number, got nan"),
    (["model.audio_patch=[16,24]"], "model.audio_patch: audio_frames 64 is not a whole number of 24-wide patches"),
    (["data.image_size=40"], "model.video_patch: image_size 40 is not a whole number of 16-wide patches"),
    (["model.extra={windows: 3}"], "model.extra.windows: not an option of backbone 'vit'"),
    # a problem that itself holds '; ' stays one problem with its own dotted path
    (["model.backbone=swin", "model.extra={stagse: 2}"],
     "model.extra.stagse: not an option of backbone 'swin'; did you mean 'stages'?"),
    (["model.audio_patch=[16]"], "model.audio_patch: expected 2 items, got 1"),
])
def test_impossible_sizes_are_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe("tiny", overrides)
    assert message in str(err.value) and "\n" not in str(err.value)

"""ViT initialisation from a local timm-layout state dict: our block is exactly timm's ViT block."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from zorro_cli.model import build_model, load_vit_weights
from zorro_cli.model.zorro import Zorro


def _timm_vit(class_token: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(
        img_size=224, patch_size=16, embed_dim=64, depth=3, num_heads=4, mlp_ratio=4.0,
        class_token=class_token, global_pool="token" if class_token else "", fc_norm=False, num_classes=0,
    ).eval()


def _zorro(**kw) -> Zorro:
    torch.manual_seed(1)
    shapes = {"frames": 1, "image_size": 224, **kw}
    return build_model("zorro_vit_tiny", dim=64, depth=2, heads=4, mlp_ratio=4.0, **shapes).eval()


@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_video_tokens_equal_timm_forward_features(tmp_path, fmt: str) -> None:
    vit = _timm_vit(class_token=False)
    path = tmp_path / ("vit.pt" if fmt == "torch" else "vit.safetensors")
    if fmt == "torch":
        torch.save(vit.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    model = _zorro()
    report = load_vit_weights(model, path)
    assert "backbone.blocks.1.attn.qkv.weight" in report.loaded
    assert "blocks.2.attn.qkv.weight" in report.ignored  # the ViT is deeper than the model
    assert "fusion" in report.fresh and "decoder.queries" in report.fresh
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    vit.blocks = vit.blocks[:2]  # compare against the same depth
    with torch.no_grad():
        ours = model.forward_features(video=image.unsqueeze(2))["video"]  # [1,196,64]
        theirs = vit.forward_features(image)  # [1,196,64] (no class token)
    assert ours.shape == theirs.shape == (1, 196, 64)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_patch_kernels_and_position_tables_follow_the_vit(tmp_path) -> None:
    vit = _timm_vit(class_token=True)  # 197 positions: the class position is dropped
    torch.save(vit.state_dict(), tmp_path / "vit.pt")
    model = _zorro(video_patch=(2, 16, 16), frames=4, image_size=112)
    load_vit_weights(model, tmp_path / "vit.pt")
    w = vit.patch_embed.proj.weight
    torch.testing.assert_close(model.audio_tokenizer.proj.weight, w.sum(1, keepdim=True))
    torch.testing.assert_close(model.video_tokenizer.proj.weight, w.unsqueeze(2).repeat(1, 1, 2, 1, 1) / 2)
    assert model.video_tokenizer.pos_space.shape == (1, 64, 7, 7)  # 14x14 resized to 112/16
    assert model.audio_tokenizer.pos.shape == (1, 64, 2, 4)
    assert torch.count_nonzero(model.video_tokenizer.pos_time) == 0
    # a static clip embeds like the image: the inflated kernel averages identical frames
    img = torch.randn(1, 3, 112, 112)
    clip = img.unsqueeze(2).repeat(1, 1, 2, 1, 1)
    torch.testing.assert_close(model.video_tokenizer.proj(clip)[:, :, 0], vit.patch_embed.proj(img),
                               atol=1e-5, rtol=0)


def test_bad_weight_files_raise_clear_errors(tmp_path) -> None:
    model = _zorro()
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        load_vit_weights(model, tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch weights file"):
        load_vit_weights(model, tmp_path / "junk.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a timm ViT state dict"):
        load_vit_weights(model, tmp_path / "other.pt")
    wide = timm.models.vision_transformer.VisionTransformer(embed_dim=96, depth=1, num_heads=4)
    torch.save(wide.state_dict(), tmp_path / "wide.pt")
    with pytest.raises(ValueError, match="ViT width 96 does not match model dim 64"):
        load_vit_weights(model, tmp_path / "wide.pt")

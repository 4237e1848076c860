"""Zorro-ViT: pre-norm ViT blocks over the concatenated audio, fusion and video tokens, and its presets.

Legend: B batch, N tokens, D width. Every block attends under the masking configuration's rules
(``masks.self_attention_rules``); the attention plan is built once per forward from the groups present and
shared by every block. The presets follow the ViT ladder timm users know (Ti/16, S/16, B/16), each
loadable from timm's ImageNet weights through ``--init``, plus two CPU sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from .config import ZorroConfig
from .layers import (
    PLAN_BUILDERS,
    Block,
    PlanBuilder,
    concat_groups,
    drop_path_rates,
    self_attention_rows,
    split_groups,
)
from .masks import self_attention_rules
from .registry import BackboneSpec, Preset


class ViTBackbone(nn.Module):
    """``forward({group: [B,Ng,D]}, grids=None) -> {group: [B,Ng,D]}`` after the final LayerNorm (the
    grids are not needed)."""

    def __init__(self, blocks: Sequence[Block], dim: int, masking: str, plan_builder: PlanBuilder,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.rules = self_attention_rules(masking)
        self.plan_builder = plan_builder
        self.token_dim = dim

    def forward(self, tokens: Mapping[str, Tensor],
                grids: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, Tensor]:
        x, layout = concat_groups(tokens)  # [B,N,D]
        plan = self.plan_builder(layout, self_attention_rows(layout, self.rules))
        for block in self.blocks:
            x = block(x, plan)
        return split_groups(self.norm(x), layout, list(tokens))


def build_vit_backbone(c: ZorroConfig) -> ViTBackbone:
    """The ViT backbone of a config: ``depth`` shared pre-norm blocks (drop-path rising linearly)."""
    blocks = [Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, r) for r in drop_path_rates(c.drop_path, c.depth)]
    return ViTBackbone(blocks, c.dim, c.masking, PLAN_BUILDERS[c.attention])


# [paper] input shapes: 128x640 log-mel -> 8x40 = 320 audio tokens; 8x224x224 video with temporal patch 1
# -> 8x14x14 = 1568 video tokens.
_PAPER_INPUTS = dict(n_mels=128, audio_frames=640, frames=8, image_size=224, video_patch=(1, 16, 16))

SPEC = BackboneSpec(
    name="vit",
    build=build_vit_backbone,
    vit_init=True,
    presets={
        # Tests, the demo and CPU smoke runs: 32x64 log-mel -> 8 audio tokens, 4x32x32 video -> 16 tokens.
        "zorro_vit_tiny": Preset("tiny", dict(
            dim=64, depth=2, heads=4, mlp_ratio=2.0, fusion_tokens=4, n_mels=32, audio_frames=64, frames=4,
            image_size=32, video_patch=(1, 16, 16), proj_dim=32), "tests and the demo"),
        # [choice] laptops and small real datasets (the `small` recipe): ViT-Ti/16's width (192, 3 heads,
        # MLP 768) and its first 4 blocks (loadable from Ti/16 weights); 64x96 log-mel with 16x16 patches
        # -> 4x6 = 24 audio tokens, 4x64x64 video -> 64 tokens.
        "zorro_vit_mini": Preset("mini", dict(
            dim=192, depth=4, heads=3, mlp_ratio=4.0, fusion_tokens=8, n_mels=64, audio_frames=96, frames=4,
            image_size=64, video_patch=(1, 16, 16), proj_dim=128), "CPU training on small datasets"),
        # The ViT ladder at the paper's input shapes [paper: ViT-B/16; Ti/16 and S/16 are timm's sizes].
        "zorro_vit_ti16": Preset("ti16", dict(dim=192, depth=12, heads=3, mlp_ratio=4.0, fusion_tokens=8,
                                              **_PAPER_INPUTS), "ViT-Ti/16"),
        "zorro_vit_s16": Preset("s16", dict(dim=384, depth=12, heads=6, mlp_ratio=4.0, fusion_tokens=8,
                                            **_PAPER_INPUTS), "ViT-S/16"),
        "zorro_vit_b16": Preset("b16", dict(dim=768, depth=12, heads=12, mlp_ratio=4.0, fusion_tokens=8,
                                            **_PAPER_INPUTS), "ViT-B/16 [paper]"),
    },
)

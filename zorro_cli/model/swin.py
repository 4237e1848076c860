"""Zorro-Swin: shifted-window attention inside each modality stream, patch merging, global fusion tokens.

Legend: B batch, C a stage's width, N tokens, Nf fusion tokens; grids: audio (Fp, Tp), video (Tp, Hp, Wp).

    audio [B,Fp*Tp,C] ----+    stage s = depths[s] blocks of width C*2**s; blocks alternate regular and
    fusion [B,Nf,C] ------+--> shifted windows (Swin), one plan per kind per stage (local.py, masks.py)
    video [B,Tp*Hp*Wp,C] -+    -> patch merging: audio 2x2 over (F, T), video 2x2 over (H, W), fusion linear
    -> after the last stage: LayerNorm -> linear to ``dim`` when the last width differs
    -> {group: [B, N', dim]}

What comes from where:
- [paper: Swin] windowed self-attention with the window shifted by half in every other block; patch
  merging (2x2 neighbours concatenated, LayerNorm, linear 4C -> 2C without bias); widths double per
  stage; 32-wide heads.
- [paper: Video Swin] 3D windows (8, 7, 7) over (Tp, Hp, Wp) with (2, 4, 4) patches and merging in space
  only; a window larger than the grid shrinks to it and is not shifted along that axis.
- [paper: Zorro] fusion tokens read every modality stream through the Zorro rule; modality tokens never
  read fusion or the other modality. The masking rules become windowed plans in :mod:`.local`.
- [choice] audio: a 2D Swin over the spectrogram's (Fp, Tp) patch grid, window (8, 10).
- [choice] one set of block weights shared by audio, fusion and video, as Zorro-ViT shares its blocks;
  patch merging is per modality (like the tokenizers); fusion tokens have no neighbours to merge and go
  through LayerNorm + linear C -> 2C at each merge.
- [choice] position: the tokenizers' learned absolute tables (which interpolate) instead of Swin's
  relative position bias, so every attention is a plain masked SDPA with the same plan protocol as ViT
  and an exact dense reference (Swin's own ablation puts relative bias under a point ahead on ImageNet).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone_options import SWIN_KEYS, config_grids, resolve_swin
from .config import ZorroConfig
from .layers import Block, concat_groups, drop_path_rates, split_groups
from .local import (
    LOCAL_IMPLS,
    LocalBackbone,
    LocalPlan,
    Partition,
    PlanImpl,
    Windows,
    cached_windows,
    grouped_plan,
    output_layers,
    window_partition,
)
from .masks import TokenLayout, has_fusion_stream
from .registry import BackboneSpec, Preset

Grids = Mapping[str, tuple[int, ...]]


class PatchMerging(nn.Module):
    """Concatenate ``factors`` neighbourhoods of a grid, norm, project: ``[B,prod(grid),C] -> [B,N',out]``.

    Odd extents are zero-padded at the end first [paper: Swin]. ``factors`` 1 leaves an axis alone.
    """

    def __init__(self, dim: int, out_dim: int, factors: tuple[int, ...]) -> None:
        super().__init__()
        self.factors = factors
        self.norm = nn.LayerNorm(math.prod(factors) * dim)
        self.reduction = nn.Linear(math.prod(factors) * dim, out_dim, bias=False)

    def forward(self, x: Tensor, grid: tuple[int, ...]) -> tuple[Tensor, tuple[int, ...]]:
        B, N, C = x.shape
        if math.prod(grid) != N or len(grid) != len(self.factors):
            raise ValueError(f"{N} tokens do not fill grid {grid} (merging factors {self.factors})")
        pads = [(-g) % f for g, f in zip(grid, self.factors, strict=True)]
        x = x.reshape(B, *grid, C)
        if any(pads):
            x = F.pad(x, [0, 0] + [p for pad in reversed(pads) for p in (0, pad)])
        new = self.output_grid(grid)
        dims = len(grid)
        x = x.reshape(B, *[d for pair in zip(new, self.factors, strict=True) for d in pair], C)
        x = x.permute(0, *range(1, 2 * dims, 2), *range(2, 2 * dims + 1, 2), 2 * dims + 1)  # [B,*new,*f,C]
        x = x.reshape(B, math.prod(new), math.prod(self.factors) * C)
        return self.reduction(self.norm(x)), new

    def output_grid(self, grid: tuple[int, ...]) -> tuple[int, ...]:
        """The grid after merging (odd extents round up)."""
        return tuple(-(-g // f) for g, f in zip(grid, self.factors, strict=True))


class GroupMerging(nn.Module):
    """Patch merging of every group present: modalities by :class:`PatchMerging`, fusion by its own module."""

    def __init__(self, merges: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.merges = nn.ModuleDict(merges)

    def forward(self, tokens: Mapping[str, Tensor], grids: Grids) -> tuple[dict[str, Tensor], dict[str, tuple[int, ...]]]:
        out: dict[str, Tensor] = {}
        new: dict[str, tuple[int, ...]] = {}
        for g, x in tokens.items():
            if g in grids:
                out[g], new[g] = self.merges[g](x, grids[g])
            else:  # fusion tokens: no grid
                out[g] = self.merges[g](x)
        return out, new


def _swin_partition(grid: tuple[int, ...], window: tuple[int, ...], shifted: bool) -> Partition:
    index, mask = window_partition(grid, window, shifted)
    return index, index, mask


def swin_windows(grid: tuple[int, ...], window: tuple[int, ...], shifted: bool, device: torch.device) -> Windows:
    """The (cached) windows of one modality's grid."""
    key = (tuple(grid), tuple(window), shifted)
    return cached_windows(("swin", *key), partial(_swin_partition, *key), device)


def swin_plan(layout: TokenLayout, grids: Grids, windows: Mapping[str, tuple[int, ...]], shifted: bool,
              rules: Mapping[str, Sequence[str]], device: torch.device | None = None) -> LocalPlan:
    """Self-attention plan of one Swin block kind: each modality in its (shifted) windows, fusion global."""
    parts: dict[str, Windows] = {}
    for g, grid in grids.items():
        if math.prod(grid) != layout.sizes()[g]:
            raise ValueError(f"{g}: {layout.sizes()[g]} tokens do not fill grid {tuple(grid)}")
        parts[g] = swin_windows(grid, windows[g], shifted, device or torch.device("cpu"))
    return grouped_plan(layout, layout, parts, rules)


class SwinStage(nn.Module):
    """Blocks at one resolution, alternating regular / shifted windows, then (optionally) merging."""

    def __init__(self, blocks: Sequence[Block], windows: Mapping[str, tuple[int, ...]],
                 merge: GroupMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.windows = dict(windows)
        self.merge = merge

    def forward(self, tokens: Mapping[str, Tensor], grids: Grids, rules: Mapping[str, Sequence[str]],
                impl: PlanImpl) -> tuple[dict[str, Tensor], dict[str, tuple[int, ...]]]:
        x, layout = concat_groups(tokens)  # [B,N,C]
        kinds = (False, True)[: len(self.blocks)]
        plans = [impl(swin_plan(layout, grids, self.windows, shifted, rules, x.device)) for shifted in kinds]
        for i, block in enumerate(self.blocks):
            x = block(x, plans[i % 2])
        out = split_groups(x, layout, list(tokens))
        return self.merge(out, grids) if self.merge is not None else (out, dict(grids))

    def prepare(self, grids: Grids) -> dict[str, tuple[int, ...]]:
        """Cache this stage's windows for ``grids``; returns the grids after merging."""
        for g, grid in grids.items():
            for shifted in (False, True)[: len(self.blocks)]:
                swin_windows(grid, self.windows[g], shifted, torch.device("cpu"))
        if self.merge is None:
            return dict(grids)
        return {g: cast(PatchMerging, self.merge.merges[g]).output_grid(grid) for g, grid in grids.items()}


class SwinBackbone(LocalBackbone):
    """Swin stages over the groups under a masking configuration.

    ``forward({group: [B,Ng,C0]}, {modality: grid}) -> {group: [B,Ng',dim]}``; ``token_dim`` = C0.
    ``local_impl`` runs the plans ("block": windowed; "dense": the reference), see :data:`.local.LOCAL_IMPLS`.
    """

    def __init__(self, stages: Sequence[SwinStage], norm: nn.LayerNorm, proj: nn.Module, masking: str,
                 local_impl: PlanImpl, token_dim: int) -> None:
        super().__init__(norm, proj, masking, local_impl, token_dim)
        self.stages = nn.ModuleList(stages)

    def forward(self, tokens: Mapping[str, Tensor], grids: Grids) -> dict[str, Tensor]:
        missing = [g for g in tokens if g != "fusion" and g not in grids]
        if missing:
            raise ValueError(f"Swin needs the token grid of {', '.join(missing)}")
        out, grid = dict(tokens), {g: tuple(grids[g]) for g in tokens if g != "fusion"}
        for stage in self.stages:
            out, grid = stage(out, grid, self.rules, self.local_impl)
        return self.finish(out)

    def prepare(self, grids: Grids) -> None:
        """Build and cache the window geometry of every stage for these input grids (``torch.export``
        and ONNX export trace a forward at these shapes through the cache)."""
        grid = dict(grids)
        for stage in cast(Sequence[SwinStage], self.stages):
            grid = stage.prepare(grid)


def build_swin_backbone(c: ZorroConfig) -> SwinBackbone:
    """The Swin backbone of a config (options resolved by :func:`.backbone_options.resolve_swin`)."""
    o, problems = resolve_swin(c)
    if problems:
        raise ValueError("invalid Swin options: " + "; ".join(problems))
    rates = iter(drop_path_rates(c.drop_path, sum(o.depths)))
    windows = {"audio": o.audio_window, "video": o.video_window}
    stages = []
    for i, (width, depth, heads) in enumerate(zip(o.widths, o.depths, o.heads, strict=True)):
        blocks = [Block(width, heads, c.mlp_ratio, c.qkv_bias, next(rates)) for _ in range(depth)]
        merge = None
        if i + 1 < len(o.widths):
            merges: dict[str, nn.Module] = {"audio": PatchMerging(width, 2 * width, (2, 2)),
                                            "video": PatchMerging(width, 2 * width, (1, 2, 2))}
            if has_fusion_stream(c.masking):
                merges["fusion"] = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width))
            merge = GroupMerging(merges)
        stages.append(SwinStage(blocks, windows, merge))
    backbone = SwinBackbone(stages, *output_layers(o.widths[-1], c.dim), c.masking, LOCAL_IMPLS[c.attention],
                            o.widths[0])
    backbone.prepare(config_grids(c))
    return backbone


SPEC = BackboneSpec(
    name="swin",
    build=build_swin_backbone,
    option_keys=SWIN_KEYS,
    check=lambda c: resolve_swin(c)[1],
    token_dim=lambda c: resolve_swin(c)[0].widths[0],
    presets={
        # Tests and CPU smoke runs, the inputs of zorro_vit_tiny: 4x4 / (2,4,4) patches -> audio 8x16,
        # video 2x8x8; 2 stages (widths 32, 64) so that windows shift, pad and merge at this size.
        "zorro_swin_tiny": Preset("tiny", dict(
            backbone="swin", dim=64, depth=4, heads=4, mlp_ratio=2.0, fusion_tokens=4, n_mels=32, audio_frames=64,
            audio_patch=(4, 4), frames=4, image_size=32, video_patch=(2, 4, 4), proj_dim=32,
            extra=dict(stages=2, head_dim=16, audio_window=(4, 4), video_window=(2, 4, 4))), "tests and the demo"),
        # Swin-B widths/depths [paper: Swin-B: C=128, 2-2-18-2 blocks, heads 4-8-16-32 of 32] at the paper's
        # input shapes, Video-Swin patching [paper: Video Swin]: 8x224x224 with (2,4,4) patches -> 4x56x56 =
        # 12544 video tokens, windows (8,7,7) (shrunk to 4 frames); 128x640 log-mel with 4x4 patches -> 32x160
        # = 5120 audio tokens, windows 8x10 [choice]. Widths/depths/heads derive from dim/depth.
        "zorro_swin_b": Preset("b16", dict(
            backbone="swin", dim=1024, depth=24, heads=32, mlp_ratio=4.0, fusion_tokens=8, n_mels=128,
            audio_frames=640, audio_patch=(4, 4), frames=8, image_size=224, video_patch=(2, 4, 4),
            extra=dict(stages=4, audio_window=(8, 10), video_window=(8, 7, 7))), "Swin-B"),
    },
)

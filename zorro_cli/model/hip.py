"""Zorro-HiP: Hierarchical Perceiver levels with audio groups, video groups and a fusion group.

Legend: B batch, C a level's width, N tokens, G groups of a modality, K latents per group,
Kf fusion latents.

    level l (width C_l):  inputs {audio [B,Na,C_{l-1}], fusion [B,Nf,.], video [B,Nv,.]} -> linear to C_l
      latents: audio [B,Ga*K,C_l] (Ga groups), fusion [B,Kf,C_l], video [B,Gv*K,C_l]  (learned, per group)
      1 cross-attention: each modality group's latents read their own chunk of the inputs;
                         the fusion latents read the inputs of every group their rule names
      depths[l] self-attention blocks among the latents: a modality group reads its own latents,
                         the fusion latents read every group their rule names
      -> the latents are the next level's inputs (regrouped into fewer, larger groups)
    -> LayerNorm -> linear to ``dim`` when the last width differs -> {group: [B, G*K | Kf, dim]}

What comes from where:
- [paper: HiP] the input is split into contiguous groups, each cross-attended by its own learned latents,
  then self-attention among each group's latents; levels have fewer groups and wider channels (the
  defaults follow HiP-16's encoder: groups 16-4-1, latents 128-256-256, widths doubling, 2-2-18 layers).
- [paper: Zorro] each modality and the fusion tokens go through their own groups; information never
  flows into the unimodal groups: under ``zorro`` the fusion latents read audio and video, the modality
  latents read only their own group. The other masking rules follow :mod:`.local`: a modality query
  reads its own group, plus (``bottleneck``) the fusion group or (``input_fusion``) also the other
  modality, in full.
- [choice] one set of cross-attention and self-attention weights per level, shared by all groups (as
  Zorro-ViT shares its blocks); the latents are per group; one shared linear maps the previous level's
  width to this level's; the fusion group has ``fusion_latents`` latents per level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import cast

import torch
from timm.layers import DropPath, Mlp
from torch import Tensor, nn

from .backbone_options import HIP_KEYS, HiPOptions, config_grids, resolve_hip
from .config import ZorroConfig
from .layers import AttentionPlan, Block, CrossAttention, concat_groups, drop_path_rates, split_groups
from .local import (
    LOCAL_IMPLS,
    LocalBackbone,
    LocalPlan,
    Partition,
    PlanImpl,
    Windows,
    cached_windows,
    group_partition,
    grouped_plan,
    output_layers,
)
from .masks import GROUPS, TokenLayout, has_fusion_stream
from .registry import BackboneSpec, Preset


class LatentCrossBlock(nn.Module):
    """Pre-norm cross-attention block: latents read (normed) inputs, then an MLP; both residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float = 0.0,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim, eps=norm_eps)
        self.norm_kv = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = CrossAttention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, latents: Tensor, inputs: Tensor, plan: AttentionPlan) -> Tensor:  # [B,K,C],[B,N,C]
        x = latents + self.drop_path(self.attn(self.norm_q(latents), self.norm_kv(inputs), plan))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _latent_partition(groups: int, k: int) -> Tensor:
    return torch.arange(groups * k, device="cpu").reshape(groups, k)  # [G,K]: group g owns latents g*K .. g*K+K-1


def _cross_partition(n: int, groups: int, k: int) -> Partition:
    k_index, key_mask = group_partition(n, groups)
    q_index = _latent_partition(groups, k)
    return q_index, k_index, (None if key_mask is None else key_mask[:, None, :].expand(-1, k, -1))


def _self_partition(groups: int, k: int) -> Partition:
    index = _latent_partition(groups, k)
    return index, index, None


def hip_windows(n: int, groups: int, k: int, device: torch.device) -> tuple[Windows, Windows]:
    """(cross-attention, self-attention) groups of one modality: ``n`` inputs, ``groups`` x ``k`` latents."""
    if n < groups:
        raise ValueError(f"HiP: {n} tokens, fewer than the {groups} groups")
    return (cached_windows(("hip-cross", n, groups, k), partial(_cross_partition, n, groups, k), device),
            cached_windows(("hip-self", groups, k), partial(_self_partition, groups, k), device))


def hip_plans(inputs: TokenLayout, latents: TokenLayout, groups: Mapping[str, int],
              rules: Mapping[str, Sequence[str]], device: torch.device | None = None) -> tuple[LocalPlan, LocalPlan]:
    """(cross-attention plan latents -> inputs, self-attention plan among latents) of one level."""
    cross: dict[str, Windows] = {}
    self_: dict[str, Windows] = {}
    for g, n_groups in groups.items():
        n, n_lat = inputs.sizes()[g], latents.sizes()[g]
        if n_lat == 0:
            continue
        if n < n_groups:
            raise ValueError(f"HiP: {g} has {n} tokens, fewer than its {n_groups} groups "
                             f"(use fewer extra.{g}_groups or larger inputs)")
        cross[g], self_[g] = hip_windows(n, n_groups, n_lat // n_groups, device or torch.device("cpu"))
    return grouped_plan(latents, inputs, cross, rules), grouped_plan(latents, latents, self_, rules)


class HiPLevel(nn.Module):
    """One HiP level: input projection, per-group latents, one cross-attention, self-attention blocks."""

    def __init__(self, in_proj: nn.Module, latents: Mapping[str, nn.Parameter], groups: Mapping[str, int],
                 cross: LatentCrossBlock, blocks: Sequence[Block]) -> None:
        super().__init__()
        self.in_proj = in_proj
        self.latents = nn.ParameterDict(latents)  # {group: [G*K, C]}
        self.groups = dict(groups)  # modality -> number of groups
        self.cross = cross
        self.blocks = nn.ModuleList(blocks)

    def forward(self, tokens: Mapping[str, Tensor], rules: Mapping[str, Sequence[str]],
                impl: PlanImpl) -> dict[str, Tensor]:
        inputs, in_layout = concat_groups({g: self.in_proj(x) for g, x in tokens.items()})  # [B,N,C]
        batch = inputs.shape[0]
        lat, lat_layout = concat_groups({g: self.latents[g].expand(batch, -1, -1)
                                         for g in GROUPS if g in tokens})  # [B,Nl,C]
        cross, self_plan = (impl(p) for p in hip_plans(in_layout, lat_layout, self.groups, rules, inputs.device))
        lat = self.cross(lat, inputs, cross)
        for block in self.blocks:
            lat = block(lat, self_plan)
        return split_groups(lat, lat_layout, list(tokens))

    def prepare(self, counts: Mapping[str, int]) -> dict[str, int]:
        """Cache this level's groups for ``counts`` input tokens per modality; returns the latent counts."""
        out = {}
        for g, n in counts.items():
            n_lat = self.latents[g].shape[0]
            hip_windows(n, self.groups[g], n_lat // self.groups[g], torch.device("cpu"))
            out[g] = n_lat
        return out


class HiPBackbone(LocalBackbone):
    """HiP levels over the groups under a masking configuration.

    ``forward({group: [B,Ng,C0]}, grids=None) -> {group: [B,Ng',dim]}`` (grids are not needed: groups are
    chunks of the flattened tokens); ``token_dim`` = C0. ``local_impl`` as in :class:`.swin.SwinBackbone`.
    """

    def __init__(self, levels: Sequence[HiPLevel], norm: nn.LayerNorm, proj: nn.Module, masking: str,
                 local_impl: PlanImpl, token_dim: int) -> None:
        super().__init__(norm, proj, masking, local_impl, token_dim)
        self.levels = nn.ModuleList(levels)

    def forward(self, tokens: Mapping[str, Tensor], grids: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, Tensor]:
        out = dict(tokens)
        for level in self.levels:
            out = level(out, self.rules, self.local_impl)
        return self.finish(out)

    def prepare(self, grids: Mapping[str, tuple[int, ...]]) -> None:
        """Build and cache every level's groups for inputs of these grids (``torch.export`` and ONNX
        export trace a forward at these shapes through the cache)."""
        counts = {g: math.prod(grid) for g, grid in grids.items()}
        for level in cast(Sequence[HiPLevel], self.levels):
            counts = level.prepare(counts)


def _latents(*shape: int) -> nn.Parameter:
    p = nn.Parameter(torch.empty(*shape))
    nn.init.trunc_normal_(p, std=0.02)
    return p


def _level(c: ZorroConfig, o: HiPOptions, i: int, rates: list[float]) -> HiPLevel:
    width, heads = o.widths[i], o.heads[i]
    prev = o.widths[i - 1] if i else o.widths[0]
    groups = {"audio": o.audio_groups[i], "video": o.video_groups[i]}
    latents = {g: _latents(n * o.latents[i], width) for g, n in groups.items()}
    if has_fusion_stream(c.masking):
        latents["fusion"] = _latents(o.fusion_latents[i], width)
    in_proj: nn.Module = nn.Linear(prev, width) if prev != width else nn.Identity()
    cross = LatentCrossBlock(width, heads, c.mlp_ratio, c.qkv_bias, rates[0])
    blocks = [Block(width, heads, c.mlp_ratio, c.qkv_bias, r) for r in rates[1:]]
    return HiPLevel(in_proj, latents, groups, cross, blocks)


def build_hip_backbone(c: ZorroConfig) -> HiPBackbone:
    """The HiP backbone of a config (options resolved by :func:`.backbone_options.resolve_hip`)."""
    o, problems = resolve_hip(c)
    if problems:
        raise ValueError("invalid HiP options: " + "; ".join(problems))
    rates = drop_path_rates(c.drop_path, sum(o.depths) + len(o.depths))  # cross + self blocks
    levels, start = [], 0
    for i, depth in enumerate(o.depths):
        levels.append(_level(c, o, i, rates[start:start + depth + 1]))
        start += depth + 1
    backbone = HiPBackbone(levels, *output_layers(o.widths[-1], c.dim), c.masking, LOCAL_IMPLS[c.attention],
                           o.widths[0])
    backbone.prepare(config_grids(c))
    return backbone


SPEC = BackboneSpec(
    name="hip",
    build=build_hip_backbone,
    option_keys=HIP_KEYS,
    check=lambda c: resolve_hip(c)[1],
    token_dim=lambda c: resolve_hip(c)[0].widths[0],
    presets={
        # Tests and CPU smoke runs: 2 levels (widths 64, 64; 2 + 2 self-attention layers), 4 then 1 group
        # per modality. 8x8 audio patches (32 tokens): with 4x4 ones (16 values a token) the audio head of this
        # tiny HiP trained unreliably on the demo data; 16 latents of width 64 on both levels train every head.
        "zorro_hip_tiny": Preset("tiny", dict(
            backbone="hip", dim=64, depth=4, heads=4, mlp_ratio=2.0, fusion_tokens=4, n_mels=32, audio_frames=64,
            audio_patch=(8, 8), frames=4, image_size=32, video_patch=(2, 4, 4), proj_dim=32,
            extra=dict(levels=2, head_dim=16, audio_groups=(4, 1), video_groups=(4, 1), latents=(16, 16),
                       widths=(64, 64), depths=(2, 2))), "tests and the demo"),
        # HiP-16-like encoder [paper: HiP: groups 16-4-1, latents 128-256-256, widths 128-256-512, 2-2-18
        # self-attention layers, 32-wide heads] per modality, at the paper's input shapes with the same
        # 4x4 / (2,4,4) patches as Zorro-Swin (5120 audio, 12544 video tokens) [choice]; fusion: 8 latents
        # per level [choice].
        "zorro_hip_b": Preset("b16", dict(
            backbone="hip", dim=512, depth=22, heads=16, mlp_ratio=4.0, fusion_tokens=8, n_mels=128,
            audio_frames=640, audio_patch=(4, 4), frames=8, image_size=224, video_patch=(2, 4, 4),
            extra=dict(levels=3)), "HiP-16"),
    },
)

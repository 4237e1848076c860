"""Zorro: one transformer over audio, fusion and video tokens, four masked outputs.

Legend: B batch, N tokens, D width, C classes, Q output queries.

    audio [B,1,F,T] -> AudioTokenizer -> [B,Na,D] --+
    fusion tokens (learned)            -> [B,Nf,D] --+-> backbone (masked self-attention, masks.py)
    video [B,3,T,H,W] -> VideoTokenizer -> [B,Nv,D] --+        -> {audio, fusion, video} tokens
    -> OutputDecoder: 4 learned queries, one masked cross-attention -> o_A, o_V, o_F, o_G  [B,D] each
    -> ClassifierHeads (one linear per output) -> logits; Projectors -> contrastive embeddings

Either modality may be missing. Under ``zorro`` and ``independent`` the audio stream never reads another
group, so with video absent only the audio tokens run (the unimodal path) and o_A is exactly what the
full model computes. See :func:`.masks.present_groups` / :func:`.masks.available_outputs` for the rule
under every configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from .config import ZorroConfig
from .heads import ClassifierHeads, Projectors
from .layers import AttentionPlan, Block, CrossAttentionBlock, block_plan, dense_plan, self_attention_rows
from .masks import (
    GROUPS,
    OUTPUTS,
    TokenLayout,
    available_outputs,
    decoder_rules,
    has_fusion_stream,
    present_groups,
    self_attention_rules,
)
from .tokenizers import AudioTokenizer, VideoTokenizer

PlanBuilder = Callable[[TokenLayout, Sequence[tuple[int, int, Sequence[str]]]], AttentionPlan]
PLAN_BUILDERS: dict[str, PlanBuilder] = {"block": block_plan, "dense": dense_plan}


def _concat(tokens: Mapping[str, Tensor]) -> tuple[Tensor, TokenLayout]:
    """``{group: [B,Ng,D]}`` -> ``[B,N,D]`` in ``audio, fusion, video`` order, and its layout."""
    sizes = {g: (tokens[g].shape[1] if g in tokens else 0) for g in GROUPS}
    return torch.cat([tokens[g] for g in GROUPS if g in tokens], dim=1), TokenLayout(**sizes)


def _split(x: Tensor, layout: TokenLayout, groups: Sequence[str]) -> dict[str, Tensor]:
    return {g: x[:, slice(*layout.span(g))] for g in groups}


class ViTBackbone(nn.Module):
    """Pre-norm ViT blocks over the concatenated groups, with the masking configuration's rules.

    ``forward({group: [B,Ng,D]}) -> {group: [B,Ng,D]}`` (after the final LayerNorm). The attention plan
    is built once per call from the groups present and shared by every block.
    """

    def __init__(self, blocks: Sequence[Block], dim: int, masking: str, plan_builder: PlanBuilder,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.rules = self_attention_rules(masking)
        self.plan_builder = plan_builder

    def forward(self, tokens: Mapping[str, Tensor]) -> dict[str, Tensor]:
        x, layout = _concat(tokens)  # [B,N,D]
        plan = self.plan_builder(layout, self_attention_rows(layout, self.rules))
        for block in self.blocks:
            x = block(x, plan)
        return _split(self.norm(x), layout, list(tokens))


class OutputDecoder(nn.Module):
    """Four learned queries read the tokens through one masked cross-attention -> ``{output: [B,D]}``."""

    def __init__(self, block: CrossAttentionBlock, dim: int, masking: str, fusion_reads: str,
                 plan_builder: PlanBuilder) -> None:
        super().__init__()
        self.rules = decoder_rules(masking, fusion_reads)
        self.names = tuple(o for o in OUTPUTS if o in self.rules)
        self.queries = nn.Parameter(torch.zeros(len(self.names), dim))  # [Q,D]
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.block = block
        self.plan_builder = plan_builder

    def forward(self, tokens: Mapping[str, Tensor], outputs: Sequence[str]) -> dict[str, Tensor]:
        x, layout = _concat(tokens)  # [B,N,D]
        index = [self.names.index(o) for o in outputs]
        rows = [(i, i + 1, [g for g in self.rules[o] if g in tokens]) for i, o in enumerate(outputs)]
        plan = self.plan_builder(layout, rows)
        q = self.queries[index].unsqueeze(0).expand(x.shape[0], -1, -1)  # [B,Q,D]
        out = self.block(q, x, plan)
        return {o: out[:, i] for i, o in enumerate(outputs)}


class Zorro(nn.Module):
    """The Zorro masked multimodal transformer (see the module docstring for the data flow).

    Submodules may be passed in already built; those left out are built from ``config``.
    """

    def __init__(self, config: ZorroConfig, *, audio_tokenizer: nn.Module | None = None,
                 video_tokenizer: nn.Module | None = None, backbone: nn.Module | None = None,
                 decoder: OutputDecoder | None = None) -> None:
        super().__init__()
        c = self.config = config
        plan_builder = PLAN_BUILDERS[c.attention]
        self.audio_tokenizer = audio_tokenizer or AudioTokenizer(c.dim, c.n_mels, c.audio_frames, c.audio_patch)
        self.video_tokenizer = video_tokenizer or VideoTokenizer(c.dim, c.frames, c.image_size, c.video_patch)
        n_fusion = c.fusion_tokens if has_fusion_stream(c.masking) else 0
        self.fusion = nn.Parameter(torch.zeros(1, n_fusion, c.dim))  # [1,Nf,D]; learned, its own position
        nn.init.trunc_normal_(self.fusion, std=0.02)
        if backbone is None:
            rates = torch.linspace(0, c.drop_path, c.depth).tolist()
            blocks = [Block(c.dim, c.heads, c.mlp_ratio, c.qkv_bias, r) for r in rates]
            backbone = ViTBackbone(blocks, c.dim, c.masking, plan_builder)
        self.backbone = backbone
        self.decoder = decoder or OutputDecoder(
            CrossAttentionBlock(c.dim, c.heads, c.mlp_ratio, c.qkv_bias), c.dim, c.masking, c.fusion_reads,
            plan_builder)
        self.output_names: tuple[str, ...] = self.decoder.names
        self.heads = ClassifierHeads(c.dim, c.num_classes, self.output_names) if c.num_classes else None
        proj_names = [o for o in ("audio", "video", "fusion") if o in self.output_names]
        self.projectors = (Projectors(c.dim, c.proj_dim, proj_names, c.temperature, c.learn_temperature)
                           if c.proj_dim else None)
        self.apply(_init_linear)

    # ---- shapes -------------------------------------------------------------------------------
    def example_inputs(self, batch: int = 2, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Random inputs of the configured shapes: ``{'audio': [B,1,F,T], 'video': [B,3,T,H,W]}``."""
        c = self.config
        return {
            "audio": torch.randn(batch, 1, c.n_mels, c.audio_frames, generator=generator),
            "video": torch.randn(batch, 3, c.frames, *c.image_size, generator=generator),
        }

    def set_attention(self, impl: str) -> None:
        """Switch every attention between ``"block"`` (skip masked blocks) and ``"dense"`` (reference)."""
        builder = PLAN_BUILDERS[impl]
        for m in self.modules():
            if hasattr(m, "plan_builder"):
                m.plan_builder = builder  # type: ignore[assignment]

    # ---- forward ------------------------------------------------------------------------------
    def tokenize(self, audio: Tensor | None, video: Tensor | None) -> dict[str, Tensor]:
        """Token groups that run for these inputs (see :func:`.masks.present_groups`)."""
        groups = present_groups(self.config.masking, audio is not None, video is not None)
        if audio is not None and video is not None and audio.shape[0] != video.shape[0]:
            raise ValueError(f"audio and video batch sizes differ: {audio.shape[0]} vs {video.shape[0]}")
        tokens: dict[str, Tensor] = {}
        if audio is not None:
            tokens["audio"] = self.audio_tokenizer(audio)
        if "fusion" in groups:
            batch = (audio if audio is not None else video).shape[0]  # type: ignore[union-attr]
            tokens["fusion"] = self.fusion.expand(batch, -1, -1)
        if video is not None:
            tokens["video"] = self.video_tokenizer(video)
        return {g: tokens[g] for g in groups}

    def forward_features(self, audio: Tensor | None = None, video: Tensor | None = None) -> dict[str, Tensor]:
        """Backbone output tokens per group: ``{'audio': [B,Na,D], 'fusion': [B,Nf,D], 'video': [B,Nv,D]}``."""
        return self.backbone(self.tokenize(audio, video))

    def encode(self, audio: Tensor | None = None, video: Tensor | None = None) -> dict[str, Tensor]:
        """The outputs computable from the inputs given: ``{'audio','video','fusion','global'} -> [B,D]``."""
        tokens = self.forward_features(audio, video)
        outputs = available_outputs(self.config.masking, list(tokens), self.config.fusion_reads)
        return self.decoder(tokens, outputs)

    def forward_head(self, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-output logits ``{name: [B,C]}``."""
        if self.heads is None:
            raise RuntimeError("this model has no classifier heads (num_classes = 0)")
        return self.heads(feats)

    def project(self, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Contrastive embeddings ``{'audio','video','fusion'} -> [B,P]`` (un-normalised)."""
        if self.projectors is None:
            raise RuntimeError("this model has no contrastive projectors (proj_dim = 0)")
        return self.projectors(feats)

    def forward(self, audio: Tensor | None = None, video: Tensor | None = None) -> dict[str, Tensor]:
        """Per-output logits for the inputs given (keys that cannot be computed are absent)."""
        return self.forward_head(self.encode(audio, video))


def _init_linear(m: nn.Module) -> None:
    """ViT-style init: truncated normal (std .02) linear weights, zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)

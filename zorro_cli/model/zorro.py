"""Zorro: one masked transformer backbone (ViT, Swin or HiP) over audio, fusion and video tokens, four outputs.

Legend: B batch, N tokens, D width, C classes, Q output queries.

    audio [B,1,F,T] -> AudioTokenizer -> [B,Na,D] --+
    fusion tokens (learned)            -> [B,Nf,D] --+-> backbone (masked self-attention, masks.py)
    video [B,3,T,H,W] -> VideoTokenizer -> [B,Nv,D] --+        -> {audio, fusion, video} tokens
    -> OutputDecoder: 4 learned queries, one masked cross-attention -> o_A, o_V, o_F, o_G  [B,D] each
    -> ClassifierHeads (one linear per output) -> logits; Projectors -> contrastive embeddings

The backbone protocol: ``backbone(tokens, grids) -> tokens`` with ``tokens = {group: [B,Ng,C0]}``
(C0 = the backbone's ``token_dim``) and ``grids = {modality: patch grid}`` (audio ``(Fp, Tp)``, video
``(Tp, Hp, Wp)``; Swin's windows need them, ViT and HiP ignore them); it returns ``{group: [B,Ng',D]}``
after its final norm, D = ``config.dim`` (Swin merges and HiP compresses tokens, so Ng' may be smaller).
:func:`.registry.backbone_spec` builds it from ``config.backbone`` (``vit`` | ``swin`` | ``hip``).

Either modality may be missing. Under ``zorro`` and ``independent`` the audio stream never reads another
group, so with video absent only the audio tokens run (the unimodal path) and o_A is exactly what the
full model computes. See :func:`.masks.present_groups` / :func:`.masks.available_outputs` for the rule
under every configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .config import ZorroConfig
from .heads import ClassifierHeads, Projectors
from .layers import PLAN_BUILDERS, CrossAttentionBlock, PlanBuilder, concat_groups
from .local import LOCAL_IMPLS
from .masks import OUTPUTS, available_outputs, decoder_rules, has_fusion_stream, present_groups
from .registry import backbone_spec
from .tokenizers import AudioTokenizer, VideoTokenizer


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
        x, layout = concat_groups(tokens)  # [B,N,D]
        index = [self.names.index(o) for o in outputs]
        rows = [(i, i + 1, [g for g in self.rules[o] if g in tokens]) for i, o in enumerate(outputs)]
        folded = self.block.attn.folds(len(outputs))
        if folded:  # the same rows over the query-major (output, head) absorbed queries
            h = self.block.attn.heads
            rows = [(i * h, j * h, groups) for i, j, groups in rows]
        plan = self.plan_builder(layout, rows)
        q = self.queries[index].unsqueeze(0).expand(x.shape[0], -1, -1)  # [B,Q,D]
        out = self.block(q, x, plan, folded)
        return {o: out[:, i] for i, o in enumerate(outputs)}


class Zorro(nn.Module):
    """The Zorro masked multimodal transformer (see the module docstring for the data flow).

    Submodules may be passed in already built; those left out are built from ``config`` (the backbone by
    :mod:`.registry`; tokenizers and fusion tokens at the backbone's token width).
    """

    def __init__(self, config: ZorroConfig, *, audio_tokenizer: nn.Module | None = None,
                 video_tokenizer: nn.Module | None = None, backbone: nn.Module | None = None,
                 decoder: OutputDecoder | None = None) -> None:
        super().__init__()
        c = self.config = config
        plan_builder = PLAN_BUILDERS[c.attention]
        spec = backbone_spec(c.backbone)
        width = spec.width(c)  # ViT: dim; Swin/HiP: the first stage/level's width
        self.audio_tokenizer = audio_tokenizer or AudioTokenizer(width, c.n_mels, c.audio_frames, c.audio_patch)
        self.video_tokenizer = video_tokenizer or VideoTokenizer(width, c.frames, c.image_size, c.video_patch)
        n_fusion = c.fusion_tokens if has_fusion_stream(c.masking) else 0
        self.fusion = nn.Parameter(torch.zeros(1, n_fusion, width))  # [1,Nf,C0]; learned, its own position
        nn.init.trunc_normal_(self.fusion, std=0.02)
        self.backbone = spec.build(c) if backbone is None else backbone
        self.decoder = decoder or OutputDecoder(
            CrossAttentionBlock(c.dim, c.heads, c.mlp_ratio, c.qkv_bias), c.dim, c.masking, c.fusion_reads,
            plan_builder)
        self.output_names: tuple[str, ...] = self.decoder.names
        self.heads = ClassifierHeads(c.dim, c.num_classes, self.output_names) if c.num_classes else None
        proj_names = [o for o in ("audio", "video", "fusion") if o in self.output_names]
        self.projectors = (Projectors(c.dim, c.proj_dim, proj_names, c.temperature, c.learn_temperature)
                           if c.proj_dim else None)
        injected = {id(m) for m in (audio_tokenizer, video_tokenizer, backbone, decoder) if m is not None}
        for child in self.children():  # what the caller built (and may have loaded) is left as given
            if id(child) not in injected:
                child.apply(_init_linear)

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
        builder, local = PLAN_BUILDERS[impl], LOCAL_IMPLS[impl]
        for m in self.modules():
            if hasattr(m, "plan_builder"):
                m.plan_builder = builder  # type: ignore[assignment]
            if hasattr(m, "local_impl"):  # Swin / HiP backbones
                m.local_impl = local  # type: ignore[assignment]

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

    def token_grids(self, audio: Tensor | None, video: Tensor | None) -> dict[str, tuple[int, ...]]:
        """Patch grid of each modality given: ``{'audio': (Fp, Tp), 'video': (Tp, Hp, Wp)}``."""
        grids: dict[str, tuple[int, ...]] = {}
        if audio is not None:
            grids["audio"] = self.audio_tokenizer.input_grid(audio)  # type: ignore[operator]
        if video is not None:
            grids["video"] = self.video_tokenizer.input_grid(video)  # type: ignore[operator]
        return grids

    def forward_features(self, audio: Tensor | None = None, video: Tensor | None = None) -> dict[str, Tensor]:
        """Backbone output tokens per group: ``{'audio': [B,Na',D], 'fusion': [B,Nf',D], 'video': [B,Nv',D]}``."""
        return self.backbone(self.tokenize(audio, video), self.token_grids(audio, video))

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

"""Training objectives: a module that maps a batch to a loss, so that DDP/FSDP wrap one ``forward``.

Legend: B batch, C classes, P projection width.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..model.losses import UNIMODAL, contrastive_loss, intra_contrastive_loss, supervised_loss
from ..model.zorro import Zorro


def _contrastive_result(loss: Tensor, parts: Mapping[str, Tensor], local_batch: int) -> dict[str, Tensor]:
    """The loss, its detached parts and the negatives per clip (the other clips of every process's batch)."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    negatives = torch.tensor(float(local_batch * world - 1))
    return {"loss": loss, **{f"loss/{k}": v.detach() for k, v in parts.items()}, "negatives": negatives}


class ContrastiveObjective(nn.Module):
    """Audio-visual InfoNCE between projected outputs; negatives gathered from every process."""

    def __init__(self, model: Zorro, variant: str = "av") -> None:
        super().__init__()
        self.model, self.variant = model, variant

    def forward(self, audio: Tensor, video: Tensor, labels: Tensor | None = None) -> dict[str, Tensor]:
        proj = self.model.project(self.model.encode(audio=audio, video=video))  # {name: [B,P]}
        assert self.model.projectors is not None
        loss, parts = contrastive_loss(proj, self.model.projectors.temperature, self.variant)
        return _contrastive_result(loss, parts, proj["audio"].shape[0])


class IntraContrastiveObjective(nn.Module):
    """Unimodal self-supervised pre-training: two views of each clip, o_A against o_A and o_V against o_V.

    Both views go through one forward pass (``[2B, ...]``); under the ``zorro`` masking o_A reads only audio
    tokens and o_V only video tokens, so each modality's stream learns alone, and audio-only or video-only
    data trains the same model.
    """

    def __init__(self, model: Zorro) -> None:
        super().__init__()
        self.model = model

    def forward(self, audio: Tensor | None, video: Tensor | None, labels: Tensor | None = None,
                audio2: Tensor | None = None, video2: Tensor | None = None) -> dict[str, Tensor]:
        if (audio is None) != (audio2 is None) or (video is None) != (video2 is None):
            raise ValueError("intra-modal contrastive pre-training needs two views of every input (audio2/video2)")
        both = {k: torch.cat([x, y]) for k, x, y in (("audio", audio, audio2), ("video", video, video2))
                if x is not None and y is not None}  # {m: [2B, ...]}
        feats = self.model.encode(**both)
        proj = self.model.project({m: feats[m] for m in UNIMODAL if m in feats})  # {m: [2B, P]}
        halves = {m: p.chunk(2) for m, p in proj.items()}
        assert self.model.projectors is not None
        loss, parts = intra_contrastive_loss({m: h[0] for m, h in halves.items()}, {m: h[1] for m, h in halves.items()},
                                             self.model.projectors.temperature)
        return _contrastive_result(loss, parts, next(iter(halves.values()))[0].shape[0])


class SupervisedObjective(nn.Module):
    """Sum over the available heads of BCE (multi-label) or CE (single-label), with per-head weights."""

    def __init__(self, model: Zorro, multilabel: bool, head_weights: Mapping[str, float]) -> None:
        super().__init__()
        self.model, self.multilabel, self.head_weights = model, multilabel, dict(head_weights)

    def forward(self, audio: Tensor | None, video: Tensor | None, labels: Tensor) -> dict[str, Tensor]:
        logits = self.model(audio=audio, video=video)  # {head: [B,C]}
        loss, per_head = supervised_loss(logits, labels, self.multilabel, self.head_weights)
        return {"loss": loss, **{f"loss/{k}": v.detach() for k, v in per_head.items()}}

"""Supervised and contrastive losses (DESIGN.md §2).

Legend: B local batch, W processes, C classes, P projection width.

- :func:`supervised_loss`: one loss per head (sigmoid BCE for multi-label, softmax CE for single
  label), summed over the heads with per-head weights.
- :func:`info_nce`: symmetric audio-visual InfoNCE; the negatives are every other clip of the *global*
  batch: embeddings are all-gathered across processes with gradients
  (``torch.distributed.nn.functional.all_gather``, whose backward sums the other processes' gradients
  back to the owner), so that after DDP averages the gradients, training equals one process seeing the
  whole batch.
- :func:`contrastive_loss`: ``"av"`` contrasts o_A with o_V (the paper's main loss); ``"av_fusion"``
  (the paper's "equation 3") adds o_A<->o_F and o_V<->o_F.
- :func:`intra_contrastive_loss`: ``"intra"``, unimodal self-supervised pre-training: two augmented views
  of each clip, o_A of one view against o_A of the other (and o_V against o_V), SimCLR-style; it needs
  only one modality, so audio-only and video-only data can pre-train the same model.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

AV_VARIANTS: tuple[str, ...] = ("av", "av_fusion")  # between modalities: contrastive_loss
CONTRASTIVE_VARIANTS: tuple[str, ...] = (*AV_VARIANTS, "intra")  # intra: intra_contrastive_loss
UNIMODAL: tuple[str, ...] = ("audio", "video")


def supervised_loss(logits: Mapping[str, Tensor], targets: Tensor, multilabel: bool,
                    weights: Mapping[str, float] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Weighted sum over heads of the per-head loss; returns ``(total, {head: loss})``.

    ``targets`` is ``[B, C]`` multi-hot (multi-label) or ``[B]`` class indices (single-label); float
    ``[B, C]`` targets are soft labels in both cases (mixup: BCE against the mixed multi-hot, CE against the
    mixed class distribution). Heads missing from ``weights`` get weight 1.
    """
    if not logits:
        raise ValueError("supervised_loss needs at least one head's logits")
    per_head: dict[str, Tensor] = {}
    for name, z in logits.items():
        if multilabel:
            per_head[name] = F.binary_cross_entropy_with_logits(z.float(), targets.float())
        elif targets.is_floating_point():
            per_head[name] = F.cross_entropy(z.float(), targets)  # soft targets [B, C]
        else:
            per_head[name] = F.cross_entropy(z.float(), targets.long())
    w = weights or {}
    total = torch.stack([w.get(n, 1.0) * loss for n, loss in per_head.items()]).sum()
    return total, per_head


def gather_with_grad(x: Tensor) -> tuple[Tensor, int]:
    """All-gather ``[B, P]`` from every process (differentiably) -> ``([W*B, P], this process's offset)``.

    Without an initialised process group (or with one process) it returns ``(x, 0)``. Every process
    must hold the same batch size.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(x.contiguous())
    return torch.cat(parts, dim=0), dist.get_rank() * x.shape[0]


def info_nce(a: Tensor, b: Tensor, temperature: Tensor | float, gather: bool = True) -> Tensor:
    """Symmetric InfoNCE between paired rows of ``a`` and ``b`` (``[B, P]`` each), cosine similarity / τ.

    Row i of ``a`` is the positive of row i of ``b``; every other row of the (global, when ``gather``)
    batch is a negative.
    """
    if a.shape != b.shape:
        raise ValueError(f"paired embeddings differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    a_all, offset = gather_with_grad(a) if gather else (a, 0)
    b_all, _ = gather_with_grad(b) if gather else (b, 0)
    labels = torch.arange(a.shape[0], device=a.device) + offset
    loss_ab = F.cross_entropy(a @ b_all.T / temperature, labels)  # [B, W*B]
    loss_ba = F.cross_entropy(b @ a_all.T / temperature, labels)
    return (loss_ab + loss_ba) / 2


def contrastive_loss(proj: Mapping[str, Tensor], temperature: Tensor | float, variant: str = "av",
                     gather: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Audio-visual contrastive loss over projected outputs; returns ``(total, {pair: loss})``."""
    if variant not in AV_VARIANTS:
        raise ValueError(f"unknown audio-visual contrastive variant {variant!r}; expected one of {AV_VARIANTS}")
    pairs = [("audio", "video")]
    if variant == "av_fusion":
        pairs += [("audio", "fusion"), ("video", "fusion")]
    missing = sorted({n for p in pairs for n in p} - set(proj))
    if missing:
        raise ValueError(f"contrastive variant {variant!r} needs projections of {missing}")
    parts = {f"{x}_{y}": info_nce(proj[x], proj[y], temperature, gather) for x, y in pairs}
    return torch.stack(list(parts.values())).sum(), parts


def intra_contrastive_loss(view1: Mapping[str, Tensor], view2: Mapping[str, Tensor], temperature: Tensor | float,
                           gather: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Unimodal two-view InfoNCE, summed over the modalities both views have: ``(total, {"audio_audio": ...})``.

    Row i of ``view1[m]`` is the positive of row i of ``view2[m]`` (two views of one clip); the other view of
    every other clip of the global batch is a negative (symmetric, as :func:`info_nce`).
    """
    names = [m for m in UNIMODAL if m in view1 and m in view2]
    if not names:
        raise ValueError(f"intra-modal contrastive loss needs audio or video projections, got {sorted(view1)}")
    parts = {f"{m}_{m}": info_nce(view1[m], view2[m], temperature, gather) for m in names}
    return torch.stack(list(parts.values())).sum(), parts

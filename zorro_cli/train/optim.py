"""Optimiser parameter groups and the learning-rate schedule (a pure function of the step)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def is_table_or_token(name: str) -> bool:
    """Position tables, learned tokens, queries and latents (and τ): embeddings, not weight matrices."""
    parts = name.split(".")
    return (name == "fusion" or parts[-1].startswith("pos") or parts[-1] in ("queries", "log_temperature")
            or "latents" in parts)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices/kernels, none on norms, biases, position tables and tokens."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or is_table_or_token(name):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``.

    ``step`` counts optimiser updates already made (the update about to happen uses ``lr_at(step)``).
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params: Iterable[dict], lr: float, betas: tuple[float, float], eps: float = 1e-8,
                    fused: bool = False) -> torch.optim.AdamW:
    """AdamW over prepared groups (the learning rate is set every step from :func:`lr_at`).

    ``fused`` (the loop sets it on CUDA): one kernel updates every parameter of a group instead of a loop
    of small kernels per tensor (ViT-B has ~200). Elsewhere PyTorch's default multi-tensor update runs,
    so CPU runs keep their numbers (the two agree to ~2e-8 per step, which a long run amplifies).
    """
    return torch.optim.AdamW(list(params), lr=lr, betas=betas, eps=eps, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr

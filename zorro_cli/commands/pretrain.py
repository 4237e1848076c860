"""``zorro pretrain``: contrastive pre-training (audio-visual or unimodal) through the shared loop (train/loop.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..recipes import Recipe
from ..train.loop import train
from ..train.task import TrainTask


def run(*, recipe: Recipe, data: Path | None = None, out: Path | None = None, init: str | None = None,
        resume: str | None = None, command: tuple[str, ...] = (), dry_run: bool = False) -> dict[str, Any]:
    """Pre-train with the recipe's contrastive loss (τ, variant) on the cache at ``data`` (default
    ``data.cache``) into ``out`` (default ``train.out_dir``), warm-started from ``init`` (a Zorro
    run/checkpoint/export, e.g. a unimodal ``intra`` run, or a timm ViT weights file); returns the summary."""
    return train(TrainTask.create("pretrain", recipe, data, out, resume=resume, init=init, command=command,
                                  dry_run=dry_run))

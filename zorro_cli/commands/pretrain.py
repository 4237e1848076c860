"""``zorro pretrain``: contrastive audio-visual pre-training through the shared loop (train/loop.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .train.loop import TrainTask, train


def run(recipe: Any, data: Path, out: Path | None, resume: str | None = None, command: tuple[str, ...] = (),
        dry_run: bool = False) -> dict[str, Any]:
    """Pre-train with the recipe's contrastive loss (τ, variant) on the cache at ``data``; returns the summary."""
    return train(TrainTask("pretrain", recipe, Path(data), None if out is None else Path(out), resume, None,
                           command, dry_run))

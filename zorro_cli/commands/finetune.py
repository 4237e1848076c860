"""``zorro finetune``: supervised training over the four heads through the shared loop (train/loop.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .train.loop import TrainTask, train


def run(recipe: Any, data: Path, out: Path | None, init: str | None = None, resume: str | None = None,
        command: tuple[str, ...] = (), dry_run: bool = False) -> dict[str, Any]:
    """Fine-tune on the cache at ``data``, warm-started from ``init`` (a Zorro run/checkpoint/export, or
    a timm ViT weights file); returns the summary."""
    return train(TrainTask("finetune", recipe, Path(data), None if out is None else Path(out), resume, init,
                           command, dry_run))

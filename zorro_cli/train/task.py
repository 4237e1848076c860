"""``TrainTask``: one invocation of ``zorro pretrain`` / ``zorro finetune``, as the loop receives it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import Failure, UsageError
from ..recipes import Recipe

Mode = Literal["pretrain", "finetune"]


class SetupError(UsageError):
    """A user mistake found while preparing a run (bad cache, bad --init, ...): one line, exit 2."""


class TrainingFailed(Failure):
    """The run cannot go on (diverged, no data, ...); the message is one line for the user."""


@dataclass(frozen=True)
class TrainTask:
    """What to train: the validated recipe, the cache, the run directory and how to start."""

    mode: Mode
    recipe: Recipe
    data_dir: Path
    out_dir: Path | None
    resume: str | None = None
    init: str | None = None
    command: tuple[str, ...] = ()
    dry_run: bool = False

    @classmethod
    def create(cls, mode: Mode, recipe: Recipe, data: Path | None, out: Path | None, *, resume: str | None = None,
               init: str | None = None, command: tuple[str, ...] = (), dry_run: bool = False) -> TrainTask:
        """A task whose cache and run directory default to the recipe's ``data.cache`` and ``train.out_dir``."""
        data = data or (Path(recipe.data.cache) if recipe.data.cache else None)
        out = out or (Path(recipe.train.out_dir) if recipe.train.out_dir else None)
        if data is None:
            raise SetupError("--data is required (or data.cache in the recipe)")
        if not dry_run and out is None:
            raise SetupError("--out is required (or train.out_dir in the recipe)")
        return cls(mode, recipe, Path(data), None if out is None else Path(out), resume, init, tuple(command),
                   dry_run)

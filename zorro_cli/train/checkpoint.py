"""Checkpoints: atomic, retained, and complete enough to resume a run exactly.

Layout of a run directory's ``checkpoints/``::

    step_00000040/            one checkpoint (a model folder: load_pretrained() reads it)
        model.safetensors     weights (+ the model config in its metadata)
        config.json           {"model": ZorroConfig, "labels": [...], "preprocessing": {...}}
        training_state.pt     optimiser state, step/epoch/batch position, best metric
        rng_rank0.pt          torch / numpy / python RNG states of each process
        state.json            the same position in plain JSON, for people and scripts
    last -> step_00000040     symbolic links, replaced atomically
    best -> step_00000020

Each checkpoint is written into a temporary folder and renamed into place, so a run killed at any
moment leaves only complete checkpoints. ``.pt`` files are read with ``torch.load(weights_only=True)``:
nothing is unpickled beyond tensors and plain containers.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_folder, atomic_path
from ..model.pretrained import write_model_files
from ..model.zorro import Zorro

_STEP_DIR = re.compile(r"^step_(\d{8})$")


@dataclass
class Position:
    """Where a run is: optimiser updates made, current epoch, micro-batches consumed in it, best so far."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None


def rng_state() -> dict[str, Any]:
    """Every RNG this process uses, in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(np.asarray(keys).astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, g = state["python"]
    random.setstate((version, tuple(internal), g))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dirs(ckpt_root: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    if not ckpt_root.is_dir():
        return []
    return sorted(p for p in ckpt_root.iterdir() if p.is_dir() and not p.is_symlink() and _STEP_DIR.match(p.name))


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a relative symlink to ``target``, atomically (a temp link renamed over it)."""
    with atomic_path(link) as tmp:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target.name)


def save_checkpoint(ckpt_root: Path, model: Zorro, model_state: dict[str, torch.Tensor], optimizer_state: dict,
                    pos: Position, extra: dict[str, Any], rng_states: list[dict[str, Any]], keep_last: int,
                    is_best: bool) -> Path:
    """Write one checkpoint atomically, move ``last`` (and ``best``), prune to ``keep_last`` (never ``best``)."""
    final = ckpt_root / f"step_{pos.step:08d}"
    with atomic_folder(final) as tmp:
        write_model_files(model, tmp, extra, state=model_state)
        torch.save({"optimizer": optimizer_state, "position": asdict(pos)}, tmp / "training_state.pt")
        for rank, rng in enumerate(rng_states):
            torch.save(rng, tmp / f"rng_rank{rank}.pt")
        (tmp / "state.json").write_text(json.dumps(asdict(pos), indent=2) + "\n")
    _point(ckpt_root / "last", final)
    if is_best:
        _point(ckpt_root / "best", final)
    best = (ckpt_root / "best").resolve() if (ckpt_root / "best").is_symlink() else None
    for old in step_dirs(ckpt_root)[:-keep_last] if keep_last > 0 else []:
        if old.resolve() != best:
            shutil.rmtree(old)
    return final


def load_training_state(ckpt: Path) -> tuple[dict, Position]:
    """``(optimizer state, Position)`` of a checkpoint folder."""
    blob = torch.load(ckpt / "training_state.pt", map_location="cpu", weights_only=True)
    return blob["optimizer"], Position(**blob["position"])


def load_rng(ckpt: Path, rank: int) -> dict[str, Any] | None:
    """This process's RNG states, or None when the checkpoint came from fewer processes."""
    path = ckpt / f"rng_rank{rank}.pt"
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def resolve_resume(run_dir: Path, resume: str | None) -> Path | None:
    """``--resume``: None/"" -> start fresh; "auto" -> ``checkpoints/last`` if any; else a checkpoint path."""
    if not resume:
        return None
    if resume == "auto":
        last = run_dir / "checkpoints" / "last"
        return last.resolve() if last.is_symlink() and last.resolve().is_dir() else None
    path = Path(resume)
    if path.is_dir() and (path / "checkpoints" / "last").is_symlink():
        path = (path / "checkpoints" / "last").resolve()
    if not (path / "training_state.pt").is_file():
        raise FileNotFoundError(f"--resume {resume}: not a checkpoint folder (no training_state.pt)")
    return path

"""Checkpoints: atomic, retained, and complete enough to resume a run exactly.

Layout of a run directory's ``checkpoints/``::

    step_00000040/            one checkpoint (a model folder: load_pretrained() reads it)
        model.safetensors     weights (+ the model config in its metadata)
        config.json           {"model": ZorroConfig, "labels": [...], "preprocessing": {...}, "weights": {sha256}}
        training_state.pt     optimiser state, step/epoch/batch position, best metric
        rng_rank0.pt          torch / numpy / python RNG states of each process
        state.json            the same position in plain JSON, for people and scripts
    last -> step_00000040     symbolic links, replaced atomically
    best -> step_00000020

Each checkpoint is written into a temporary folder and renamed into place, so a run killed at any
moment leaves only complete checkpoints (the next run in the folder removes the temporaries). Only
finite weights are saved (the loop checks them first); ``config.json`` records the weights' size and
sha256. ``keep_last`` prunes by step number among the checkpoints up to the current step, never
``best``. A run folder copied with ``cp -rL`` has folders for ``last`` / ``best``: they are read as the
``step_*`` folder of their step (:func:`pointer_target`) and turned back into links at the next write.
``.pt`` files are read with ``torch.load(weights_only=True)``: nothing is unpickled beyond tensors and
plain containers.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_folder, atomic_path
from ..errors import Failure, UsageError
from ..model.pretrained import WEIGHTS, read_weights, write_model_files
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


class CheckpointError(Failure):
    """A checkpoint could not be written (disk full, read-only folder): one line; earlier ones intact."""


class ResumeError(UsageError):
    """``--resume`` cannot be carried out as asked (nothing to resume from, an unresolvable ``last``)."""


def step_of(path: Path) -> int | None:
    """The step of a ``step_NNNNNNNN`` folder name, else None."""
    m = _STEP_DIR.match(path.name)
    return int(m.group(1)) if m else None


def step_dirs(ckpt_root: Path) -> list[Path]:
    """Complete checkpoint folders, by step number (oldest first)."""
    if not ckpt_root.is_dir():
        return []
    found = [p for p in ckpt_root.iterdir() if p.is_dir() and not p.is_symlink() and _STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: step_of(p) or 0)


def pointer_target(link: Path) -> Path | None:
    """The checkpoint folder ``last`` / ``best`` names: a symlink's target, or, for a run folder copied
    with ``cp -rL`` (links became folders), the ``step_*`` folder of the copy's step when it is there,
    else the copied folder itself. None when ``link`` is absent or names no checkpoint."""
    if link.is_symlink():
        target = link.resolve()
        return target if (target / "training_state.pt").is_file() else None
    if not (link / "training_state.pt").is_file():
        return None
    twin = link.parent / f"step_{checkpoint_step(link):08d}"
    return twin if (twin / "training_state.pt").is_file() else link


def checkpoint_step(ckpt: Path) -> int:
    """The step a checkpoint folder holds: its ``step_*`` name, else its ``state.json`` (-1 if neither)."""
    found = step_of(ckpt)
    if found is not None:
        return found
    try:
        return int(json.loads((ckpt / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return -1


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a relative symlink to ``target``, atomically (a temp link renamed over it). A real
    folder in its place (a ``cp -rL`` copy) is moved aside first and removed once the link is there."""
    aside = None
    if link.is_dir() and not link.is_symlink():
        aside = link.with_name(f".{link.name}.old-{os.getpid()}")
        link.rename(aside)
    with atomic_path(link) as tmp:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target.name)
    if aside is not None:
        shutil.rmtree(aside)


def _prune(ckpt_root: Path, keep_last: int, current: int) -> None:
    """Keep the ``keep_last`` newest checkpoints by step up to ``current`` (never ``best``, never one
    past ``current``: those are not this run's history and are left as they are)."""
    if keep_last <= 0:
        return
    best = pointer_target(ckpt_root / "best")
    own = [p for p in step_dirs(ckpt_root) if (step_of(p) or 0) <= current]
    for old in own[:-keep_last]:
        if best is None or old.resolve() != best.resolve():
            shutil.rmtree(old)


def save_checkpoint(ckpt_root: Path, model: Zorro, model_state: dict[str, torch.Tensor], optimizer_state: dict,
                    pos: Position, extra: dict[str, Any], rng_states: list[dict[str, Any]], keep_last: int,
                    is_best: bool) -> Path:
    """Write one checkpoint atomically, move ``last`` (and ``best``), prune to ``keep_last`` (never ``best``).

    An ``OSError`` (disk full, read-only folder) becomes one :class:`CheckpointError`; the temporary
    folder is gone and every earlier checkpoint and pointer is as it was."""
    final = ckpt_root / f"step_{pos.step:08d}"
    try:
        with atomic_folder(final) as tmp:
            write_model_files(model, tmp, extra, state=model_state)
            torch.save({"optimizer": optimizer_state, "position": asdict(pos)}, tmp / "training_state.pt")
            for rank, rng in enumerate(rng_states):
                torch.save(rng, tmp / f"rng_rank{rank}.pt")
            (tmp / "state.json").write_text(json.dumps(asdict(pos), indent=2) + "\n")
        _point(ckpt_root / "last", final)
        if is_best:
            _point(ckpt_root / "best", final)
        _prune(ckpt_root, keep_last, pos.step)
    except OSError as e:
        last = pointer_target(ckpt_root / "last")
        raise CheckpointError(f"{final}: could not write the checkpoint ({e.strerror or e}); earlier checkpoints "
                              f"are intact (last: {last.name if last else 'none'})") from None
    return final


def nonfinite_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity, checked where they live (one
    device synchronisation for all of them)."""
    items = [(k, t) for k, t in named if t.is_floating_point() and t.numel()]
    if not items:
        return []
    ok = torch.stack([torch.isfinite(t).all() for _, t in items]).cpu().tolist()
    return [k for (k, _), good in zip(items, ok, strict=True) if not good]


def _load(path: Path) -> Any:
    """``torch.load`` of a checkpoint file (tensors and plain containers only); a damaged file is one
    :class:`ResumeError` naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, ValueError) as e:
        raise ResumeError(f"{path}: not a readable checkpoint file ({' '.join(str(e).split())[:200]})") from None


def load_training_state(ckpt: Path) -> tuple[dict, Position]:
    """``(optimizer state, Position)`` of a checkpoint folder."""
    blob = _load(ckpt / "training_state.pt")
    return blob["optimizer"], Position(**blob["position"])


def _unfit(ckpt: Path, e: Exception) -> ResumeError:
    return ResumeError(f"--resume {ckpt}: does not fit this model and recipe ({' '.join(str(e).split())[:160]}); "
                       "resume with the recipe it was trained with")


def restore(ckpt: Path, model: torch.nn.Module,
            optimizer: torch.optim.Optimizer | None) -> tuple[Position, dict | None]:
    """Load a checkpoint's weights (verified: :func:`read_weights`) and optimiser state into ``model`` and
    ``optimizer``; returns its position and, when ``optimizer`` is None (the weights only), the optimiser
    state for :func:`restore_optimizer`, read once. Weights or a state that do not fit (another preset or
    recipe, a run saved by an older version) are one :class:`ResumeError` instead of PyTorch's key listing."""
    opt_state, pos = load_training_state(ckpt)
    try:
        missing, unexpected = model.load_state_dict(read_weights(ckpt / WEIGHTS), strict=False)
        if not missing and not unexpected and optimizer is not None:
            optimizer.load_state_dict(opt_state)
    except (RuntimeError, ValueError, KeyError) as e:
        if isinstance(e, UsageError):
            raise
        raise _unfit(ckpt, e) from None
    if missing or unexpected:
        raise ResumeError(f"--resume {ckpt}: its weights do not fit this model ({len(missing)} missing, "
                          f"{len(unexpected)} unexpected tensors, e.g. {(missing or unexpected)[0]}); resume with "
                          "the recipe it was trained with")
    return pos, opt_state if optimizer is None else None


def restore_optimizer(ckpt: Path, opt_state: dict, load: Callable[[dict], None]) -> None:
    """``load(opt_state)``: the optimiser state :func:`restore` returned for ``ckpt`` (a sharded optimiser,
    set once the model is sharded); a state that does not fit is one :class:`ResumeError`."""
    try:
        load(opt_state)
    except (RuntimeError, ValueError, KeyError) as e:
        raise _unfit(ckpt, e) from None


def load_rng(ckpt: Path, rank: int) -> dict[str, Any] | None:
    """This process's RNG states, or None when the checkpoint came from fewer processes."""
    path = ckpt / f"rng_rank{rank}.pt"
    return _load(path) if path.is_file() else None


def _auto(run_dir: Path) -> Path | None:
    """``--resume auto``: the checkpoint ``checkpoints/last`` names, or a newer complete ``step_*`` folder
    (a run killed between writing a checkpoint and moving ``last`` to it); None for a folder without
    checkpoints; :class:`ResumeError` when there are some but ``last`` names none."""
    root = run_dir / "checkpoints"
    last = root / "last"
    target = pointer_target(last)
    steps = [p for p in step_dirs(root) if (p / "training_state.pt").is_file()]
    if target is not None:
        own = step_of(target)
        return (steps[-1] if steps and own is not None and (step_of(steps[-1]) or 0) > own else target).resolve()
    if not steps and not last.is_symlink() and not last.exists():
        return None
    state = ("missing" if not last.is_symlink() and not last.exists() else "a dangling link" if not last.exists()
             else "no training_state.pt there")
    hint = f"; the newest checkpoint is {steps[-1]}: pass it to --resume" if steps else ""
    raise ResumeError(f"--resume auto: {last} does not name a checkpoint ({state}){hint}")


def resolve_resume(run_dir: Path, resume: str | None) -> Path | None:
    """``--resume``: None/"" -> start fresh; "auto" -> see :func:`_auto`; else a checkpoint folder or a
    run folder (its ``last``)."""
    if not resume:
        return None
    if resume == "auto":
        return _auto(run_dir)
    path = Path(resume)
    if path.is_dir() and not (path / "training_state.pt").is_file():
        path = pointer_target(path / "checkpoints" / "last") or path
    if not (path / "training_state.pt").is_file():
        raise ResumeError(f"--resume {resume}: not a checkpoint folder (no training_state.pt)")
    return path.resolve()

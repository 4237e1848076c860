"""``zorro evaluate``: per-head metrics of a checkpoint on a cache split (multi-clip, multi-crop views)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from ..atomic import atomic_path
from ..data.cache import open_cache
from ..data.dataset import ClipDataset
from ..data.inputs import ModelInputs
from ..data.views import crops_for
from ..errors import Failure, UsageError
from ..evaluation.budget import available_bytes, batch_bytes, check_flags, check_memory
from ..evaluation.compat import check_cache
from ..evaluation.predict import autocast_dtype, head_metrics, predict
from ..evaluation.report import condition, print_table, write_plots
from ..model.masks import has_unimodal_streams
from ..model.pretrained import load_pretrained, read_model_config, resolve_model_path
from ..output import say
from ..ranges import crops_problem
from ..train.setup import require_labels

HEAD_CHOICES = ("all", "audio", "video", "fusion", "global")
DEFAULT_WORKERS = 2  # outside a run folder (an export): DataLoader workers
DEFAULT_BATCH = 16  # outside a run folder: clips per batch


def plan_inputs(masking: str, modality: str, missing: str | None) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """``(modalities to read, heads to report or None for all that answer)`` for an evaluation request.

    ``--modality audio`` under a masking with unimodal streams reads audio only (the unimodal path: no
    video is read or computed); otherwise a head is evaluated with every modality it may depend on.
    ``--missing M`` feeds only the other modality and reports every head that can still answer.
    """
    if modality not in HEAD_CHOICES:
        raise UsageError(f"--modality: expected one of {', '.join(HEAD_CHOICES)}, got {modality!r}")
    if missing not in (None, "audio", "video"):
        raise UsageError(f"--missing: expected audio or video, got {missing!r}")
    if missing is not None:
        if modality == missing:
            raise UsageError(f"--modality {modality} cannot be evaluated with --missing {missing}")
        present = ("video",) if missing == "audio" else ("audio",)
        return present, None if modality == "all" else (modality,)
    if modality in ("audio", "video") and has_unimodal_streams(masking):
        return (modality,), (modality,)
    return ("audio", "video"), None if modality == "all" else (modality,)


def run_settings(checkpoint: str | Path) -> tuple[int | None, int | None]:
    """``(data.workers, eval.batch_size)`` of the run a checkpoint belongs to (its ``recipe.yaml``), or
    ``(None, None)`` for a checkpoint outside a run folder (an export)."""
    from ..recipes import load_recipe

    try:
        weights = resolve_model_path(checkpoint)
    except (FileNotFoundError, ValueError):
        return None, None
    for folder in [weights.parent, *weights.parent.parents][:4]:
        if (folder / "recipe.yaml").is_file():
            try:
                recipe = load_recipe(folder / "recipe.yaml")
            except ValueError:
                return None, None
            return recipe.data.workers, recipe.eval.batch_size
    return None, None


def loader_settings(checkpoint: str | Path, workers: int | None, batch_size: int | None) -> tuple[int, int]:
    """``(workers, batch_size)``: the flags where given, else the run's (:func:`run_settings`), else the
    defaults for an export."""
    run_workers, run_batch = run_settings(checkpoint)
    workers = workers if workers is not None else run_workers if run_workers is not None else DEFAULT_WORKERS
    if workers < 0:
        raise UsageError(f"--workers: expected >= 0, got {workers}")
    return workers, batch_size or run_batch or DEFAULT_BATCH


def checkpoint_used(checkpoint: str | Path) -> Path:
    """The folder whose weights ``checkpoint`` stands for: a run directory's ``checkpoints/best`` (else
    ``checkpoints/last``), or the model folder itself."""
    weights = resolve_model_path(checkpoint)
    inside_run = Path(checkpoint).is_dir() and weights.parent.parent.name == "checkpoints"
    return weights.parent if inside_run else Path(checkpoint)


def run(*, checkpoint: str | Path, data: str | Path, split: str = "test", modality: str = "all",
        missing: str | None = None, clips: int = 1, crops: int = 3, batch_size: int | None = None,
        dump: str | Path | None = None, plots: str | Path | None = None, workers: int | None = None,
        precision: str = "auto") -> dict[str, Any]:
    """Evaluate a checkpoint per head on a cache split; returns the result dict (also shown as a table).

    The clips are read as the checkpoint's :class:`ModelInputs` say (window lengths, frame stride, mel
    normalisation), with ``clips`` x ``crops`` views averaged per clip. ``workers`` and ``batch_size``
    (clips per batch) default to the run's ``data.workers`` and ``eval.batch_size`` (2 and 16 outside a
    run folder); ``precision`` ``auto`` runs the model in the precision it trained in.
    """
    if (problem := crops_problem(crops)) is not None:
        raise UsageError(f"--crops: {problem}")
    workers, batch_size = loader_settings(checkpoint, workers, batch_size)
    check_flags(clips=clips, batch_size=batch_size)
    try:
        _, info = read_model_config(checkpoint)
        model = load_pretrained(checkpoint)
        dtype = autocast_dtype(precision, info.get("precision"))
        used = checkpoint_used(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"--checkpoint {checkpoint}: {e}") from None
    if model.heads is None:
        raise UsageError(f"--checkpoint {checkpoint}: a model without classifier heads (pre-training); "
                         "fine-tune it first")
    cache = open_cache(data)
    c = model.config
    check_cache(info, cache, what=f"--data {data}")
    if int(cache.settings["n_mels"]) != c.n_mels:
        raise UsageError(f"--data {data}: {cache.settings['n_mels']} mel bins, the model reads {c.n_mels}")
    if len(cache.label_names) != c.num_classes:
        raise UsageError(f"--data {data}: {len(cache.label_names)} labels, the model has {c.num_classes} classes")
    if split not in cache.index.split_names:
        raise UsageError(f"--split {split}: the cache at {data} has no such split (it has "
                         f"{', '.join(cache.index.split_names) or 'none'})")
    read, heads = plan_inputs(c.masking, modality, missing)
    dataset = ClipDataset.from_inputs(cache, ModelInputs.from_config(info), split, "eval", modalities=read,
                                      eval_clips=clips, eval_crops=crops)
    if len(dataset) == 0:
        raise UsageError(f"--data {data}: no clip of split {split!r} has {' and '.join(read)} "
                         f"(excluded: {dataset.excluded})")
    require_labels(dataset, f"--data {data} split {split!r}")
    if used != Path(checkpoint):
        say(f"evaluating {used} ({used.resolve().name}) of run {checkpoint}")
    acc = Accelerator(cpu=not torch.cuda.is_available())  # cpu=True: join a gloo group under torchrun
    need = batch_bytes(ModelInputs.from_config(info), c.n_mels, read, clips * crops, min(batch_size, len(dataset)))
    check_memory(need, available_bytes(acc.device), f"--clips {clips} x --crops {crops} x --batch-size {batch_size}")
    model.to(acc.device)
    targets, scores = predict(model, dataset, acc, batch_size, cache.multilabel, workers, dtype)
    if heads is not None:
        scores = {h: s for h, s in scores.items() if h in heads}
    result: dict[str, Any] = {
        "heads": head_metrics(targets, scores, cache.multilabel), "num_clips": len(dataset),
        "checkpoint": str(checkpoint), "checkpoint_used": str(used), "data": str(data), "split": split,
        "modality": modality, "missing": missing, "inputs": list(read),
        "views": clips * crops_for(read, crops), "masking": c.masking,
        "multilabel": cache.multilabel, "excluded": dataset.excluded, "workers": workers,
        "batch_size": batch_size, "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch.")}
    if acc.is_main_process:
        try:
            if dump:
                arrays: dict[str, Any] = {"targets": targets,
                                          "clip_ids": np.array([r.clip_id for r in dataset.rows]),
                                          **{f"scores_{h}": s for h, s in scores.items()}}
                _save_npz(Path(dump), arrays)
            if plots:
                result["plots"] = write_plots(Path(plots), Path(checkpoint), targets, scores, cache.label_names,
                                              cache.multilabel, split, condition(read, missing))
        except OSError as e:  # a full disk, a read-only folder, a file where a folder should be
            raise Failure(f"{e.filename or dump or plots}: cannot write the results "
                          f"({' '.join(str(e.strerror or e).split())})") from None
        print_table(result)
    return result


def _save_npz(path: Path, arrays: dict[str, Any]) -> None:
    """``np.savez_compressed`` to ``path`` (``.npz`` added as numpy does), atomically."""
    path = path if path.name.endswith(".npz") else path.with_name(path.name + ".npz")
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, **arrays)

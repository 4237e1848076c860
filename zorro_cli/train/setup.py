"""Everything a run needs before its first step: cache, datasets, model, warm start, run directory paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import default_collate

from ..data.cache import Cache
from ..data.dataset import ClipDataset
from ..data.inputs import ModelInputs
from ..model.config import ZorroConfig
from ..model.init import load_vit_weights
from ..model.pretrained import load_matching_weights, resolve_model_path
from ..model.zorro import Zorro
from ..recipes import Recipe
from .task import Mode, SetupError, TrainTask

__all__ = ["RunSetup", "SetupError", "build_model_config", "build_setup", "make_dataset", "warm_start"]


@dataclass
class RunSetup:
    """The built pieces of a run."""

    recipe: Recipe
    model: Zorro
    inputs: ModelInputs
    train_set: ClipDataset
    val_set: ClipDataset | None
    multilabel: bool
    label_names: list[str]
    find_unused: bool
    ckpt_root: Path | None
    export_extra: dict[str, Any]
    excluded: dict[str, int] = field(default_factory=dict)
    init_report: dict[str, Any] = field(default_factory=dict)
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]] = default_collate


def model_inputs(recipe: Recipe, cache: Cache) -> ModelInputs:
    """The inputs a model trained with ``recipe`` on ``cache`` reads (written into its checkpoints)."""
    d = recipe.data
    return ModelInputs.from_cache(cache, d.modalities, d.audio_frames, d.frames, d.image_size, d.frame_stride,
                                  d.mel_norm)


def make_dataset(data_dir: Path | Cache, recipe: Recipe, split: str | list[str], mode: Literal["train", "eval"],
                 inputs: ModelInputs, views: int = 1, holdout: tuple[float, bool] | None = None) -> ClipDataset:
    """A ``ClipDataset`` over the cache: ``inputs``' shapes, the recipe's seed, eval views and (for
    training) augmentation; ``views=2``: two augmented views per clip (intra-modal pre-training);
    ``holdout``: ``(fraction, held)`` of ``split`` (see ``data.val_holdout``)."""
    train = mode == "train"
    return ClipDataset.from_inputs(data_dir, inputs, split, mode, seed=recipe.train.seed,
                          eval_clips=recipe.eval.clips, eval_crops=recipe.eval.crops,
                          augment=recipe.data.augment if train else None, views=views, holdout=holdout)


def check_splits(cache: Cache, data_dir: Path | None, **wanted: str | list[str] | None) -> None:
    """``SetupError`` naming the recipe key and the splits the cache has when a wanted split is absent."""
    have = list(cache.index.split_names)
    for key, value in wanted.items():
        names = [value] if isinstance(value, str) else list(value or [])
        absent = [n for n in names if n not in have]
        if absent:
            raise SetupError(f"data.{key}: no split {', '.join(map(repr, absent))} in the cache at {data_dir} "
                             f"(it has {', '.join(have) or 'none'})")


def unlabelled_clips(dataset: ClipDataset) -> list[str]:
    """Ids of the dataset's clips without any label (read from the index's columns, no row objects)."""
    rows = dataset.rows
    counts = np.diff(rows.source.label_offsets)[rows.positions]
    return [rows.source.clip_id[int(i)] for i in rows.positions[counts == 0]]


def require_labels(dataset: ClipDataset, what: str) -> None:
    """A single-label dataset must give every clip a class: an unlabelled clip would be a target of -1
    (an IndexError in the loss, a wrong answer in a metric), so it is refused, counted, with the first ids."""
    if dataset.multilabel:
        return  # no label = a negative for every class: a valid multi-label target
    missing = unlabelled_clips(dataset)
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise SetupError(f"{what}: {len(missing)} of {len(dataset)} clips have no label ({shown}); a single-label "
                         "task needs one label per clip: label them or move them to another split")


def build_model_config(recipe: Recipe, mode: Mode, n_mels: int, num_classes: int) -> ZorroConfig:
    """The ``ZorroConfig`` of a run: preset, recipe overrides, input shapes from the data section."""
    try:
        return recipe.model.to_config(recipe.data, n_mels, num_classes if mode == "finetune" else 0,
                                      contrastive=mode == "pretrain")
    except ValueError as e:
        raise SetupError(f"model: {e}") from None


def warm_start(model: Zorro, init: str) -> dict[str, Any]:
    """``--init``: a Zorro run / checkpoint / export (matching tensors), or a timm ViT weights file."""
    path = Path(init)
    if not path.exists():
        raise SetupError(f"--init {init}: no such file or directory")
    try:
        resolve_model_path(path)
    except (FileNotFoundError, ValueError):
        try:
            report = load_vit_weights(model, path)
        except (ValueError, TypeError, FileNotFoundError) as e:
            raise SetupError(f"--init {init}: {e}") from None
        return {"kind": "vit", "loaded": len(report.loaded), "fresh": len(report.fresh)}
    keys = load_matching_weights(model, path)
    if not keys["loaded"]:
        raise SetupError(f"--init {init}: no tensor matches this model (is it the same preset?)")
    return {"kind": "zorro", "loaded": len(keys["loaded"]), "skipped": keys["skipped"], "fresh": len(keys["fresh"])}


def check_pretraining(recipe: Recipe, modalities: tuple[str, ...]) -> None:
    """``av``/``av_fusion`` contrast audio with video, so they need both (``intra`` works on either alone:
    every masking outputs o_A from audio and o_V from video)."""
    variant = recipe.train.contrastive
    if variant != "intra" and set(modalities) != {"audio", "video"}:
        raise SetupError(f"train.contrastive: {variant!r} contrasts audio with video, but data.modalities is "
                         f"{list(modalities)}; use train.contrastive=intra (two views of each clip) to pre-train "
                         "on one modality")


def build_setup(task: TrainTask) -> RunSetup:
    """Open the cache, build datasets and model, apply ``--init``."""
    from ..data.cache import open_cache

    r = task.recipe
    try:
        cache = open_cache(task.data_dir)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SetupError(f"--data {task.data_dir}: {e}") from None
    inputs = model_inputs(r, cache)
    modalities = inputs.modalities
    d = r.data
    check_splits(cache, task.data_dir, train_split=d.train_split, val_split=d.val_split)
    held = d.val_holdout if d.val_holdout > 0 else None
    # Intra-modal pre-training reads two augmented views of each clip, in training and (seeded, epoch 0)
    # in validation, where view 1 must retrieve view 2 among the val clips.
    intra = task.mode == "pretrain" and r.train.contrastive == "intra"
    if task.mode == "pretrain":
        check_pretraining(r, inputs.modalities)
    n_views = 2 if intra else 1
    train_set = make_dataset(cache, r, d.train_split, "train", inputs, n_views,
                             None if held is None else (held, False))
    if len(train_set) == 0:
        raise SetupError(f"--data {task.data_dir}: no clip of split {d.train_split!r} has "
                         f"{' and '.join(modalities)} (excluded: {train_set.excluded})")
    val_mode: Literal["train", "eval"] = "train" if intra else "eval"
    val_set = (make_dataset(cache, r, d.train_split, val_mode, inputs, n_views, (held, True)) if held is not None
               else make_dataset(cache, r, d.val_split, val_mode, inputs, n_views) if d.val_split else None)
    labels = list(cache.label_names)
    if task.mode == "finetune" and not labels:
        raise SetupError(f"--data {task.data_dir}: the cache has no labels to fine-tune on")
    if task.mode == "finetune":
        require_labels(train_set, f"--data {task.data_dir} split {r.data.train_split!r}")
        if val_set is not None:
            require_labels(val_set, f"--data {task.data_dir} split {r.data.val_split!r} (data.val_split)")
    model = Zorro(build_model_config(r, task.mode, int(cache.settings["n_mels"]), len(labels)))
    init_report = warm_start(model, task.init) if task.init else {}
    both = set(modalities) == {"audio", "video"}
    extra = {"labels": labels, "multilabel": bool(cache.multilabel), "task": task.mode,
             "precision": r.train.precision, **inputs.to_config()}  # what predict / evaluate run the model in
    return RunSetup(
        recipe=r, model=model, inputs=inputs, train_set=train_set, val_set=val_set,
        multilabel=bool(cache.multilabel), label_names=labels, find_unused=not (task.mode == "finetune" and both),
        ckpt_root=None if task.out_dir is None else task.out_dir / "checkpoints", export_extra=extra,
        excluded=dict(train_set.excluded), init_report=init_report,
    )

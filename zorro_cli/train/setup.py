"""Everything a run needs before its first step: cache, datasets, model, warm start, run directory paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.data import Dataset, default_collate

from ..model.init import load_vit_weights
from ..model.pretrained import load_matching_weights, resolve_model_path
from ..model.zorro import Zorro

if TYPE_CHECKING:
    from .loop import TrainTask


class SetupError(ValueError):
    """A user mistake found while preparing a run (bad cache, bad --init, ...): one line, exit 2."""


@dataclass
class RunSetup:
    """The built pieces of a run."""

    recipe: Any
    model: Zorro
    train_set: Any
    val_set: Any | None
    multilabel: bool
    label_names: list[str]
    find_unused: bool
    ckpt_root: Path | None
    export_extra: dict[str, Any]
    excluded: dict[str, int] = field(default_factory=dict)
    init_report: dict[str, Any] = field(default_factory=dict)
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]] = default_collate


def make_dataset(data_dir: Path, recipe: Any, split: str, mode: str,
                 modalities: tuple[str, ...] | None = None) -> Dataset:
    """A ``ClipDataset`` over the cache with the recipe's shapes and augmentation."""
    from ..data.dataset import ClipDataset

    d, e, t = recipe.data, recipe.eval, recipe.train
    return ClipDataset(
        data_dir, split=split, mode=mode, modalities=tuple(modalities or d.modalities),
        audio_frames=d.audio_frames, frames=d.frames, image_size=d.image_size, frame_stride=d.frame_stride,
        seed=t.seed, eval_clips=e.clips, eval_crops=e.crops, augment=d.augment if mode == "train" else None,
        mel_norm=d.mel_norm,
    )


def build_model_config(recipe: Any, mode: str, n_mels: int, num_classes: int) -> Any:
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


def build_setup(task: TrainTask) -> RunSetup:
    """Open the cache, build datasets and model, apply ``--init``."""
    from ..data.cache import open_cache

    r = task.recipe
    try:
        cache = open_cache(task.data_dir)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise SetupError(f"--data {task.data_dir}: {e}") from None
    modalities = tuple(r.data.modalities)
    train_set = make_dataset(task.data_dir, r, r.data.train_split, "train")
    if len(train_set) == 0:
        raise SetupError(f"--data {task.data_dir}: no clip of split {r.data.train_split!r} has "
                         f"{' and '.join(modalities)} (excluded: {getattr(train_set, 'excluded', {})})")
    val_set = make_dataset(task.data_dir, r, r.data.val_split, "eval") if r.data.val_split else None
    labels = list(cache.label_names)
    if task.mode == "finetune" and not labels:
        raise SetupError(f"--data {task.data_dir}: the cache has no labels to fine-tune on")
    model = Zorro(build_model_config(r, task.mode, int(cache.settings["n_mels"]), len(labels)))
    init_report = warm_start(model, task.init) if task.init else {}
    both = set(modalities) == {"audio", "video"}
    extra = {
        "labels": labels, "multilabel": bool(cache.multilabel), "task": task.mode,
        "preprocessing": {**dict(cache.settings), **{k: _plain(v) for k, v in dict(cache.stats).items()}},
        "inputs": {"modalities": list(modalities), "audio_frames": r.data.audio_frames, "frames": r.data.frames,
                   "image_size": r.data.image_size, "frame_stride": r.data.frame_stride,
                   "mel_norm": r.data.mel_norm},
    }
    return RunSetup(
        recipe=r, model=model, train_set=train_set, val_set=val_set, multilabel=bool(cache.multilabel),
        label_names=labels, find_unused=not (task.mode == "finetune" and both),
        ckpt_root=None if task.out_dir is None else task.out_dir / "checkpoints", export_extra=extra,
        excluded=dict(getattr(train_set, "excluded", {})), init_report=init_report,
    )


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v

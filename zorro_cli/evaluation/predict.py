"""Evaluation: per-head predictions over an eval dataset (views averaged), sharded over processes.

Legend: N clips, V views per clip (temporal clips x spatial crops), C classes, P projection width.

Each process predicts a disjoint, strided part of the clips; the parts are gathered and put back in
clip order on every process, so metrics are identical whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from .model.losses import info_nce
from .model.zorro import Zorro
from .train.metrics import compute_metrics


class EvaluateError(ValueError):
    """A user mistake in an evaluation request (bad checkpoint, cache or flag): one line, exit 2."""


def _views(x: Tensor | None) -> tuple[Tensor | None, int]:
    """``[B, V, ...] -> [B*V, ...]`` (and V)."""
    if x is None:
        return None, 1
    return x.flatten(0, 1), x.shape[1]


def _loader(dataset: Dataset, acc: Accelerator, batch_size: int, workers: int) -> DataLoader:
    part = Subset(dataset, list(range(acc.process_index, len(dataset), acc.num_processes)))  # type: ignore[arg-type]
    return DataLoader(part, batch_size=batch_size, num_workers=workers, shuffle=False)


def _gather_in_order(acc: Accelerator, rows: list[tuple[int, Any]]) -> list[Any]:
    """Every process's ``(clip index, value)`` rows, deduplicated and sorted by clip index."""
    everything = gather_object(rows) if acc.num_processes > 1 else rows
    return [v for _, v in sorted(dict(everything).items())]


@torch.no_grad()
def _view_means(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, workers: int,
                fn: Callable[[Tensor | None, Tensor | None], dict[str, Tensor]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``fn(audio, video) -> {name: [B*V, X]}`` over this process's clips, average each clip's views,
    gather every process's rows: ``(labels, {name: [N, X]})`` in clip order."""
    model.eval()
    rows: list[tuple[int, tuple[np.ndarray, dict[str, np.ndarray]]]] = []
    for batch in _loader(dataset, acc, batch_size, workers):
        audio, va = _views(batch.get("audio"))
        video, vv = _views(batch.get("video"))
        out = fn(None if audio is None else audio.to(acc.device), None if video is None else video.to(acc.device))
        means = {k: x.float().reshape(-1, max(va, vv), x.shape[-1]).mean(1).cpu().numpy() for k, x in out.items()}
        labels = batch["label"].numpy()
        for i, idx in enumerate(batch["index"].tolist()):
            rows.append((idx, (labels[i], {k: m[i] for k, m in means.items()})))
    ordered = _gather_in_order(acc, rows)
    if not ordered:
        return np.zeros((0,)), {}
    names = ordered[0][1].keys()
    return np.stack([t for t, _ in ordered]), {k: np.stack([r[k] for _, r in ordered]) for k in names}


def predict(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, multilabel: bool,
            workers: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(targets, {head: [N, C] probabilities averaged over views})`` in clip order.

    Heads are those the model can compute from the dataset's modalities (a missing modality leaves
    only the heads that can still answer). Targets are ``[N, C]`` multi-hot or ``[N]`` indices.
    """
    def probabilities(audio: Tensor | None, video: Tensor | None) -> dict[str, Tensor]:
        logits = model(audio=audio, video=video)
        return {h: (z.float().sigmoid() if multilabel else z.float().softmax(-1)) for h, z in logits.items()}

    return _view_means(model, dataset, acc, batch_size, workers, probabilities)


def embed(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, workers: int = 0) -> dict[str, Tensor]:
    """Contrastive embeddings ``{name: [N, P]}`` (views averaged), in clip order, on every process."""
    _, emb = _view_means(model, dataset, acc, batch_size, workers,
                         lambda audio, video: model.project(model.encode(audio=audio, video=video)))
    return {k: torch.from_numpy(v) for k, v in emb.items()}


def contrastive_metrics(emb: dict[str, Tensor], temperature: float) -> dict[str, float]:
    """InfoNCE over the whole set and audio->video / video->audio retrieval top-1."""
    a = torch.nn.functional.normalize(emb["audio"], dim=-1)
    v = torch.nn.functional.normalize(emb["video"], dim=-1)
    sim = a @ v.T
    target = torch.arange(len(a))
    return {"contrastive_loss": float(info_nce(a, v, temperature, gather=False)),
            "a2v_top1": float((sim.argmax(1) == target).float().mean()),
            "v2a_top1": float((sim.argmax(0) == target).float().mean())}


def head_metrics(targets: np.ndarray, scores: dict[str, np.ndarray], multilabel: bool) -> dict[str, dict[str, float]]:
    """``{head: {metric: value}}``."""
    return {h: compute_metrics(s, targets, multilabel) for h, s in scores.items()}


def validation_metrics(setup: Any, acc: Accelerator) -> dict[str, float]:
    """Flat ``{"<head>/<metric>": v}`` (fine-tuning) or contrastive metrics (pre-training) on the val split."""
    if setup.val_set is None or len(setup.val_set) == 0:
        return {}
    model: Zorro = setup.model
    bs = setup.recipe.eval.batch_size
    if model.heads is None:
        assert model.projectors is not None
        return contrastive_metrics(embed(model, setup.val_set, acc, bs), float(model.projectors.temperature))
    targets, scores = predict(model, setup.val_set, acc, bs, setup.multilabel)
    return {f"{h}/{k}": v for h, m in head_metrics(targets, scores, setup.multilabel).items() for k, v in m.items()}


# --- the `zorro evaluate` verb ------------------------------------------------------------------------

HEAD_CHOICES = ("all", "audio", "video", "fusion", "global")


def plan_inputs(masking: str, modality: str, missing: str | None) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """``(modalities to read, heads to report or None for all that answer)`` for an evaluation request.

    ``--modality audio`` under a masking with unimodal streams reads audio only (the unimodal path: no
    video is read or computed); otherwise a head is evaluated with every modality it may depend on.
    ``--missing M`` feeds only the other modality and reports every head that can still answer.
    """
    from .model.masks import has_unimodal_streams

    if modality not in HEAD_CHOICES:
        raise EvaluateError(f"--modality: expected one of {', '.join(HEAD_CHOICES)}, got {modality!r}")
    if missing not in (None, "audio", "video"):
        raise EvaluateError(f"--missing: expected audio or video, got {missing!r}")
    if missing is not None:
        if modality == missing:
            raise EvaluateError(f"--modality {modality} cannot be evaluated with --missing {missing}")
        present = ("video",) if missing == "audio" else ("audio",)
        return present, None if modality == "all" else (modality,)
    if modality in ("audio", "video") and has_unimodal_streams(masking):
        return (modality,), (modality,)
    return ("audio", "video"), None if modality == "all" else (modality,)


def run(checkpoint: str, data: str, split: str = "test", modality: str = "all", missing: str | None = None,
        clips: int = 1, crops: int = 3, batch_size: int = 16, dump: str | None = None,
        plots: str | None = None, workers: int = 0) -> dict[str, Any]:
    """Evaluate a checkpoint per head on a cache split; returns the result dict (also shown as a table)."""
    from pathlib import Path

    from .data.cache import open_cache
    from .data.dataset import ClipDataset
    from .model.pretrained import load_pretrained, read_model_config

    try:
        _, info = read_model_config(checkpoint)
        model = load_pretrained(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise EvaluateError(f"--checkpoint {checkpoint}: {e}") from None
    if model.heads is None:
        raise EvaluateError(f"--checkpoint {checkpoint}: a model without classifier heads (pre-training); "
                            "fine-tune it first")
    cache = open_cache(data)
    c = model.config
    if int(cache.settings["n_mels"]) != c.n_mels:
        raise EvaluateError(f"--data {data}: {cache.settings['n_mels']} mel bins, the model reads {c.n_mels}")
    if len(cache.label_names) != c.num_classes:
        raise EvaluateError(f"--data {data}: {len(cache.label_names)} labels, the model has {c.num_classes} classes")
    read, heads = plan_inputs(c.masking, modality, missing)
    stride = int(info.get("inputs", {}).get("frame_stride", 1))
    dataset = ClipDataset(cache, split=split, mode="eval", modalities=read, audio_frames=c.audio_frames,
                          frames=c.frames, image_size=c.image_size, frame_stride=stride, eval_clips=clips,
                          eval_crops=crops)
    if len(dataset) == 0:
        raise EvaluateError(f"--data {data}: no clip of split {split!r} has {' and '.join(read)} "
                            f"(excluded: {dataset.excluded})")
    acc = Accelerator(cpu=not torch.cuda.is_available())  # cpu=True: join a gloo group under torchrun
    model.to(acc.device)
    targets, scores = predict(model, dataset, acc, batch_size, cache.multilabel, workers)
    if heads is not None:
        scores = {h: s for h, s in scores.items() if h in heads}
    result = {"heads": head_metrics(targets, scores, cache.multilabel), "num_clips": len(dataset),
              "checkpoint": str(checkpoint), "data": str(data), "split": split, "modality": modality,
              "missing": missing, "inputs": list(read), "views": clips * crops, "masking": c.masking,
              "multilabel": cache.multilabel, "excluded": dataset.excluded}
    if acc.is_main_process:
        if dump:
            np.savez_compressed(dump, targets=targets, clip_ids=np.array([r.clip_id for r in dataset.rows]),
                                **{f"scores_{h}": s for h, s in scores.items()})
        if plots:
            from .evaluate_report import write_plots

            result["plots"] = write_plots(Path(plots), Path(checkpoint), targets, scores, cache.label_names,
                                          cache.multilabel)
        from .evaluate_report import print_table

        print_table(result)
    return result

"""Predictions: per-head predictions over an eval dataset (views averaged), sharded over processes.

Legend: N clips, V views per clip (temporal clips x spatial crops), C classes, P projection width.

Each process predicts a disjoint, strided part of the clips; the parts are gathered and put back in
clip order on every process, so metrics are identical whatever the number of processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import Failure
from ..model.losses import UNIMODAL, info_nce
from ..model.zorro import Zorro
from .metrics import compute_metrics


class NonFiniteScores(Failure):
    """A model answered NaN or infinity for some clips: refused rather than counted (one line, exit 1)."""


def clip_ids(dataset: Dataset) -> list[str]:
    """The clip ids of a dataset in its order (``ClipDataset.rows``), else the positions as strings."""
    rows = getattr(dataset, "rows", None)
    return [r.clip_id for r in rows] if rows is not None else [str(i) for i in range(len(dataset))]  # type: ignore[arg-type]


def require_finite(outputs: dict[str, np.ndarray], ids: Sequence[str], what: str = "scores") -> None:
    """Raise :class:`NonFiniteScores` naming the clips (rows of every ``[N, X]`` output) that hold a NaN
    or an infinity: a metric computed over them would count them as answers (argmax of NaN is class 0)."""
    bad = np.zeros(len(ids), bool)
    heads = []
    for name, x in outputs.items():
        rows = ~np.isfinite(x).reshape(len(x), -1).all(1)
        if rows.any():
            bad |= rows
            heads.append(name)
    if bad.any():
        shown = [ids[i] for i in np.flatnonzero(bad)[:5].tolist()]
        more = ", ..." if bad.sum() > len(shown) else ""
        raise NonFiniteScores(f"non-finite {what} ({', '.join(heads)}) for {int(bad.sum())} of {len(ids)} clip(s): "
                              f"{', '.join(shown)}{more}; NaN or Inf in their inputs or in the weights, nothing counted")


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
    """``(targets, {head: [N, C] probabilities averaged over views})`` in clip order; a clip scored NaN
    or Inf by any head stops it (:class:`NonFiniteScores`, naming the clips).

    Heads are those the model can compute from the dataset's modalities (a missing modality leaves
    only the heads that can still answer). Targets are ``[N, C]`` multi-hot or ``[N]`` indices.
    """
    def probabilities(audio: Tensor | None, video: Tensor | None) -> dict[str, Tensor]:
        logits = model(audio=audio, video=video)
        return {h: (z.float().sigmoid() if multilabel else z.float().softmax(-1)) for h, z in logits.items()}

    targets, scores = _view_means(model, dataset, acc, batch_size, workers, probabilities)
    require_finite(scores, clip_ids(dataset))
    return targets, scores


def embed(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, workers: int = 0) -> dict[str, Tensor]:
    """Contrastive embeddings ``{name: [N, P]}`` (views averaged), in clip order, on every process."""
    _, emb = _view_means(model, dataset, acc, batch_size, workers,
                         lambda audio, video: model.project(model.encode(audio=audio, video=video)))
    require_finite(emb, clip_ids(dataset), "embeddings")
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


@torch.no_grad()
def embed_views(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int,
                workers: int = 0) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Unimodal embeddings of each clip's two views (a ``views=2`` dataset): ``({m: [N, P]}, {m: [N, P]})``."""
    model.eval()
    rows: list[tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]] = []
    for batch in _loader(dataset, acc, batch_size, workers):
        both = {m: torch.cat([batch[m], batch[m + "2"]]).to(acc.device) for m in UNIMODAL if m in batch}
        feats = model.encode(**both)
        proj = {m: p.float().cpu().numpy() for m, p in model.project({m: feats[m] for m in both}).items()}
        n = len(batch["index"])
        for i, idx in enumerate(batch["index"].tolist()):
            rows.append((idx, {m: (p[i], p[n + i]) for m, p in proj.items()}))
    ordered = _gather_in_order(acc, rows)
    names = list(ordered[0]) if ordered else []
    first = {m: np.stack([r[m][0] for r in ordered]) for m in names}
    second = {m: np.stack([r[m][1] for r in ordered]) for m in names}
    ids = clip_ids(dataset)
    require_finite(first, ids, "embeddings (view 1)")
    require_finite(second, ids, "embeddings (view 2)")
    return ({m: torch.from_numpy(x) for m, x in first.items()}, {m: torch.from_numpy(x) for m, x in second.items()})


def intra_metrics(view1: dict[str, Tensor], view2: dict[str, Tensor], temperature: float) -> dict[str, float]:
    """Two-view InfoNCE over the whole set (summed over modalities) and view-1 -> view-2 retrieval top-1."""
    out: dict[str, float] = {"contrastive_loss": 0.0}
    for m in view1:
        a = torch.nn.functional.normalize(view1[m], dim=-1)
        b = torch.nn.functional.normalize(view2[m], dim=-1)
        out["contrastive_loss"] += float(info_nce(a, b, temperature, gather=False))
        out[f"{m}_view_top1"] = float(((a @ b.T).argmax(1) == torch.arange(len(a))).float().mean())
    return out


def head_metrics(targets: np.ndarray, scores: dict[str, np.ndarray], multilabel: bool) -> dict[str, dict[str, float]]:
    """``{head: {metric: value}}``."""
    return {h: compute_metrics(s, targets, multilabel) for h, s in scores.items()}

"""Predictions: per-head predictions over an eval dataset (views averaged), sharded over processes.

Legend: N clips, V views per clip (temporal clips x spatial crops), C classes, P projection width.

Each process predicts a disjoint, strided part of the clips; the parts are gathered and put back in
clip order on every process, so metrics are identical whatever the number of processes. A model sharded
by FSDP (validation under ``train.strategy: fsdp``) all-gathers its weights in every forward, so there
every process runs as many batches: the shorter parts repeat their last clip, counted once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule
from torch.utils.data import DataLoader, Dataset, Subset

from ..data.prefetch import prefetched
from ..data.progress import ClipProgress
from ..errors import Failure
from ..model.losses import UNIMODAL, info_nce
from ..model.zorro import Zorro
from .metrics import compute_metrics

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, trained: str | None) -> torch.dtype | None:
    """The autocast dtype to run a model in (None: fp32). ``auto`` follows the run's ``train.precision``
    (``bf16`` / ``fp16`` / ``no``, recorded in its ``config.json``); ``fp32`` turns autocast off."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return _DTYPES.get(trained or "no") if precision == "auto" else _DTYPES.get(precision)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` on ``device`` in ``dtype``, or nothing for fp32."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


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


def _part(n: int, rank: int, world: int, even: bool) -> list[int]:
    """Clip indices of process ``rank``: every ``world``-th from ``rank``; ``even``: padded with its last
    clip (the last clip when it has none) to the longest part's length."""
    part = list(range(rank, n, world))
    longest = -(-n // world)
    return part + [part[-1] if part else n - 1] * (longest - len(part)) if even and n else part


def _loader(dataset: Dataset, acc: Accelerator, batch_size: int, workers: int, model: nn.Module) -> DataLoader:
    """This process's strided part of the clips; pinned batches on a GPU (copied while the model runs)."""
    even = any(isinstance(m, FSDPModule) for m in model.modules())
    indices = _part(len(dataset), acc.process_index, acc.num_processes, even)  # type: ignore[arg-type]
    part = Subset(dataset, indices)
    return DataLoader(part, batch_size=batch_size, num_workers=workers, shuffle=False,
                      pin_memory=acc.device.type == "cuda", prefetch_factor=4 if workers > 0 else None)


@contextlib.contextmanager
def _batches(loader: DataLoader, workers: int) -> Iterator[Iterable[Any]]:
    """The loader's batches; with no worker process, made by a background thread two batches ahead (the
    thread is stopped when the block is left, also by an exception)."""
    if workers > 0:
        yield loader
        return
    batches = prefetched(loader)
    try:
        yield batches
    finally:
        batches.close()


def _gather_in_order(acc: Accelerator, rows: list[tuple[int, Any]]) -> list[Any]:
    """Every process's ``(clip index, value)`` rows, deduplicated (the first row of a clip counts) and
    sorted by clip index."""
    everything = gather_object(rows) if acc.num_processes > 1 else rows
    first: dict[int, Any] = {}
    for i, v in everything:
        first.setdefault(i, v)
    return [v for _, v in sorted(first.items())]


@torch.no_grad()
def _view_means(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, workers: int,
                fn: Callable[[Tensor | None, Tensor | None], dict[str, Tensor]], dtype: torch.dtype | None = None,
                label: str = "evaluate", plain: bool | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run ``fn(audio, video) -> {name: [B*V, X]}`` over this process's clips (under ``dtype`` autocast),
    average each clip's views, gather every process's rows: ``(labels, {name: [N, X]})`` in clip order.
    The main process shows a progress bar (plain lines off a terminal)."""
    model.eval()
    rows: list[tuple[int, tuple[np.ndarray, dict[str, np.ndarray]]]] = []
    loader = _loader(dataset, acc, batch_size, workers, model)
    shown = acc.is_main_process and len(loader) > 0
    progress = ClipProgress(len(loader.dataset), label, plain=plain, failures=False) if shown else None  # type: ignore[arg-type]
    with progress if progress is not None else contextlib.nullcontext(), _batches(loader, workers) as batches:
        for batch in batches:
            audio, va = _views(batch.get("audio"))
            video, vv = _views(batch.get("video"))
            with autocast(acc.device, dtype):
                out = fn(None if audio is None else audio.to(acc.device, non_blocking=True),
                         None if video is None else video.to(acc.device, non_blocking=True))
            means = {k: x.float().reshape(-1, max(va, vv), x.shape[-1]).mean(1).cpu().numpy() for k, x in out.items()}
            labels = batch["label"].numpy()
            for i, idx in enumerate(batch["index"].tolist()):
                rows.append((idx, (labels[i], {k: m[i] for k, m in means.items()})))
            if progress is not None:
                progress.advance(ok=True, count=len(labels))
    ordered = _gather_in_order(acc, rows)
    if not ordered:
        return np.zeros((0,)), {}
    names = ordered[0][1].keys()
    return np.stack([t for t, _ in ordered]), {k: np.stack([r[k] for _, r in ordered]) for k in names}


def predict(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, multilabel: bool,
            workers: int = 0, dtype: torch.dtype | None = None, label: str = "evaluate",
            plain: bool | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(targets, {head: [N, C] probabilities averaged over views})`` in clip order; a clip scored NaN
    or Inf by any head stops it (:class:`NonFiniteScores`, naming the clips).

    Heads are those the model can compute from the dataset's modalities (a missing modality leaves
    only the heads that can still answer). Targets are ``[N, C]`` multi-hot or ``[N]`` indices.
    ``dtype``: autocast precision (None: fp32); probabilities are always computed in fp32.
    """
    def probabilities(audio: Tensor | None, video: Tensor | None) -> dict[str, Tensor]:
        logits = model(audio=audio, video=video)
        return {h: (z.float().sigmoid() if multilabel else z.float().softmax(-1)) for h, z in logits.items()}

    targets, scores = _view_means(model, dataset, acc, batch_size, workers, probabilities, dtype, label, plain)
    require_finite(scores, clip_ids(dataset))
    return targets, scores


def embed(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, workers: int = 0,
          dtype: torch.dtype | None = None, label: str = "evaluate", plain: bool | None = None) -> dict[str, Tensor]:
    """Contrastive embeddings ``{name: [N, P]}`` (views averaged), in clip order, on every process."""
    _, emb = _view_means(model, dataset, acc, batch_size, workers,
                         lambda audio, video: model.project(model.encode(audio=audio, video=video)), dtype, label,
                         plain)
    require_finite(emb, clip_ids(dataset), "embeddings")
    return {k: torch.from_numpy(v) for k, v in emb.items()}


def _paired(a: Tensor, b: Tensor, temperature: float) -> tuple[float, float, float]:
    """Row i of ``a`` paired with row i of ``b`` over the whole set: (InfoNCE, a->b top-1, b->a top-1)."""
    a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
    sim, target = a @ b.T, torch.arange(len(a))
    return (float(info_nce(a, b, temperature, gather=False)), float((sim.argmax(1) == target).float().mean()),
            float((sim.argmax(0) == target).float().mean()))


def contrastive_metrics(emb: dict[str, Tensor], temperature: float) -> dict[str, float]:
    """InfoNCE over the whole set and audio->video / video->audio retrieval top-1."""
    loss, a2v, v2a = _paired(emb["audio"], emb["video"], temperature)
    return {"contrastive_loss": loss, "a2v_top1": a2v, "v2a_top1": v2a}


@torch.no_grad()
def embed_views(model: Zorro, dataset: Dataset, acc: Accelerator, batch_size: int, workers: int = 0,
                dtype: torch.dtype | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Unimodal embeddings of each clip's two views (a ``views=2`` dataset): ``({m: [N, P]}, {m: [N, P]})``
    (``dtype``: autocast precision, None: fp32)."""
    model.eval()
    rows: list[tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]] = []
    with _batches(_loader(dataset, acc, batch_size, workers, model), workers) as batches:
        for batch in batches:
            both = {m: torch.cat([batch[m], batch[m + "2"]]).to(acc.device, non_blocking=True)
                    for m in UNIMODAL if m in batch}
            with autocast(acc.device, dtype):
                feats = model.encode(**both)
                projected = model.project({m: feats[m] for m in both})
            proj = {m: p.float().cpu().numpy() for m, p in projected.items()}
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
        loss, top1, _ = _paired(view1[m], view2[m], temperature)
        out["contrastive_loss"] += loss
        out[f"{m}_view_top1"] = top1
    return out


def head_metrics(targets: np.ndarray, scores: dict[str, np.ndarray], multilabel: bool) -> dict[str, dict[str, float]]:
    """``{head: {metric: value}}``."""
    return {h: compute_metrics(s, targets, multilabel) for h, s in scores.items()}

"""``zorro predict``: each head's top-k labels for media files, from a run folder, checkpoint or export.

Legend: N files in a batch, V views per file (clips x crops), C classes.

Each file is decoded by the cache builder's own code with the preprocessing settings the checkpoint
records (:mod:`zorro_cli.evaluation.inference`), cut into ``zorro evaluate``'s views, and run through the
model: with both modalities, or through the unimodal path when one is asked for (``modality``) or the
file lacks the other. A file that cannot be decoded is one failed record, never an exception; the
verb raises :class:`PredictFailed` (exit 1) after every file has been reported when any failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_text_atomic
from ..data.inputs import ModelInputs
from ..data.parallel import process_all
from ..data.pipeline import ClipFailure, ClipResult, process_clip
from ..data.views import crops_for
from ..errors import Failure, UsageError
from ..evaluation.files import expand_media
from ..evaluation.inference import (
    clip_views,
    file_task,
    preprocess_config,
    present_modalities,
    reading_config,
)
from ..evaluation.runners import Runner, open_runner
from ..ranges import crops_problem

MODALITIES = {"all": ("audio", "video"), "audio": ("audio",), "video": ("video",)}
Record = dict[str, Any]


class PredictFailed(Failure):
    """Some files could not be predicted (each is a failed record in ``result``): exit 1."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def top_k(scores: np.ndarray, labels: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` best ``{"label", "score"}`` of one file's scores ``[C]``, best first (ties: lower index)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"label": labels[i], "score": round(float(scores[i]), 6)} for i in order.tolist()]


def view_means(logits: dict[str, torch.Tensor], views: int, multilabel: bool) -> dict[str, np.ndarray]:
    """``{head: [N*V, C] logits}`` -> ``{head: [N, C]}`` probabilities (sigmoid or softmax) averaged
    over each file's ``views``, as ``zorro evaluate`` averages a clip's views."""
    out = {}
    for head, z in logits.items():
        p = z.float().sigmoid() if multilabel else z.float().softmax(-1)
        out[head] = p.reshape(-1, views, p.shape[-1]).mean(1).numpy()
    return out


@dataclass(frozen=True)
class Request:
    """What to compute for every file."""

    read: tuple[str, ...]  # modalities to decode (and feed when the file has them)
    inputs: ModelInputs
    labels: list[str]
    multilabel: bool
    clips: int
    crops: int
    k: int


def _check(modality: str, k: int, clips: int, crops: int, batch_size: int, workers: int) -> None:
    """``UsageError`` naming the first flag out of range."""
    if modality not in MODALITIES:
        raise UsageError(f"--modality: expected one of {', '.join(MODALITIES)}, got {modality!r}")
    if (problem := crops_problem(crops)) is not None:
        raise UsageError(f"--crops: {problem}")
    for flag, value, low in (("--top-k", k, 1), ("--clips", clips, 1), ("--batch-size", batch_size, 1),
                             ("--workers", workers, 0)):
        if value < low:
            raise UsageError(f"{flag}: expected >= {low}, got {value}")


def _open(checkpoint: str | Path, runtime: str, precision: str) -> Runner:
    """The model to predict with; ``UsageError`` for a path that holds none, or one without heads."""
    try:
        runner = open_runner(checkpoint, runtime, precision)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise UsageError(f"--checkpoint {checkpoint}: {e}") from None
    if not runner.info.get("labels") or not runner.info.get("model", {}).get("num_classes"):
        raise UsageError(f"--checkpoint {checkpoint}: a model without classifier heads or labels "
                         "(pre-training); fine-tune it first")
    return runner


def _request(runner: Runner, modality: str, clips: int, crops: int, k: int) -> Request:
    """What to compute, from the model's ``config.json`` and the flags."""
    info = runner.info
    inputs = ModelInputs.from_config(info)
    read = tuple(m for m in MODALITIES[modality] if m in inputs.modalities)
    if not read:
        raise UsageError(f"--modality {modality}: the model reads {' and '.join(inputs.modalities)} only")
    return Request(read, inputs, list(info["labels"]), bool(info.get("multilabel", False)), clips, crops, k)


def _decoded(paths: list[Path], runner: Runner, req: Request, workers: int) -> Iterator[ClipResult | ClipFailure]:
    """Each file decoded as the model's cache was (in order; ``workers`` processes, 0: this one)."""
    try:
        cfg = reading_config(preprocess_config(runner.info), req.read)
    except ValueError as e:
        raise UsageError(f"--checkpoint: {e}") from None
    tasks = (file_task(p) for p in paths)
    if workers == 0:
        return (process_clip(t, cfg) for t in tasks)
    return process_all(tasks, cfg, workers)


def _predict_batch(runner: Runner, req: Request, clips: list[ClipResult]) -> list[Record]:
    """Records of decoded files; files with the same modalities run as one batch."""
    records: dict[int, Record] = {}
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, clip in enumerate(clips):
        groups.setdefault(tuple(m for m in present_modalities(clip) if m in req.read), []).append(i)
    for present, members in groups.items():
        if not present:
            records.update({i: _failed(clips[i].task.path, f"no {' or '.join(req.read)} stream") for i in members})
            continue
        batch: dict[str, list[torch.Tensor]] = {m: [] for m in present}
        for i in members:
            for m, x in clip_views(clips[i], req.inputs, req.clips, req.crops, present).items():
                batch[m].append(x)
        try:
            logits = runner.logits({m: torch.cat(xs) for m, xs in batch.items()})
        except ValueError as e:  # e.g. an ONNX export without the graph for these inputs
            records.update({i: _failed(clips[i].task.path, str(e)) for i in members})
            continue
        views = req.clips * crops_for(present, req.crops)  # audio alone: one view per window
        probs = view_means(logits, views, req.multilabel)
        for j, i in enumerate(members):
            records[i] = _record(clips[i], present, {h: p[j] for h, p in probs.items()}, req, views)
    return [records[i] for i in range(len(clips))]


def _record(clip: ClipResult, present: tuple[str, ...], scores: dict[str, np.ndarray], req: Request,
            views: int) -> Record:
    """A predicted file's record (a failed one when a head scored NaN or infinity)."""
    bad = [h for h, s in scores.items() if not np.isfinite(s).all()]
    if bad:
        return _failed(clip.task.path, f"non-finite scores from the {', '.join(bad)} head(s)")
    return {"file": clip.task.path, "ok": True, "inputs": list(present), "duration_s": round(clip.duration_s, 3),
            "views": views, "heads": {h: top_k(s, req.labels, req.k) for h, s in scores.items()}}


def _failed(name: str, reason: str) -> Record:
    return {"file": name, "ok": False, "error": reason}


def run(*, files: Sequence[str | Path], checkpoint: str | Path, modality: str = "all", top_k: int = 5,
        clips: int = 1, crops: int = 3, batch_size: int = 16, workers: int = 0, runtime: str = "auto",
        precision: str = "auto", json_out: str | Path | None = None,
        emit: Callable[[Record], None] | None = None) -> dict[str, Any]:
    """Predict every file named by ``files`` (files, folders, globs, manifests); ``emit`` gets each
    file's record as soon as its batch is done, in order; ``json_out`` receives them as JSON lines.

    Returns ``{"checkpoint", "model", "files", "predicted", "failed", "records"}``; raises
    :class:`PredictFailed` (after every record) when any file failed, ``UsageError`` for a bad request.
    """
    _check(modality, top_k, clips, crops, batch_size, workers)
    paths = expand_media(files)
    if not paths:
        raise UsageError(f"FILE {' '.join(map(str, files))}: no media file found")
    runner = _open(checkpoint, runtime, precision)
    req = _request(runner, modality, clips, crops, top_k)
    records: list[Record] = []
    decoded = _decoded(paths, runner, req, workers)
    while chunk := list(islice(decoded, batch_size)):
        done = [c for c in chunk if isinstance(c, ClipResult)]
        predicted = iter(_predict_batch(runner, req, done))
        for c in chunk:
            rec = next(predicted) if isinstance(c, ClipResult) else _failed(c.task.path, c.reason)
            records.append(rec)
            if emit is not None:
                emit(rec)
    if json_out is not None:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json_out, "".join(json.dumps(r) + "\n" for r in records))
    failed = [r for r in records if not r["ok"]]
    result = {"checkpoint": str(checkpoint), "model": runner.description, "files": len(records),
              "predicted": len(records) - len(failed), "failed": len(failed), "records": records}
    if failed:
        raise PredictFailed(f"{len(failed)} of {len(records)} files could not be predicted "
                            f"(first: {failed[0]['file']}: {failed[0]['error']})", result)
    return result

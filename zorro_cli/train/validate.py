"""Validation during training: the val split's metrics, computed the way ``zorro evaluate`` computes them
(the run's DataLoader workers and training precision, a progress bar or plain lines as the log says)."""

from __future__ import annotations

from accelerate import Accelerator

from ..evaluation.predict import (
    autocast_dtype,
    contrastive_metrics,
    embed,
    embed_views,
    head_metrics,
    intra_metrics,
    predict,
)
from .setup import RunSetup

PLAIN = {"auto": None, "bar": False, "plain": True}


def validation_metrics(setup: RunSetup, acc: Accelerator) -> dict[str, float]:
    """Flat ``{"<head>/<metric>": v}`` (fine-tuning) or contrastive metrics (pre-training) on the val split."""
    if setup.val_set is None or len(setup.val_set) == 0:
        return {}
    model, r = setup.model, setup.recipe
    bs, workers = r.eval.batch_size, r.data.workers
    dtype = autocast_dtype("auto", r.train.precision)
    plain = PLAIN[r.log.progress]
    if model.heads is None:
        assert model.projectors is not None
        tau = float(model.projectors.temperature)
        if r.train.contrastive == "intra":
            return intra_metrics(*embed_views(model, setup.val_set, acc, bs, workers, dtype), tau)
        return contrastive_metrics(embed(model, setup.val_set, acc, bs, workers, dtype, "validate", plain), tau)
    targets, scores = predict(model, setup.val_set, acc, bs, setup.multilabel, workers, dtype, "validate", plain)
    return {f"{h}/{k}": v for h, m in head_metrics(targets, scores, setup.multilabel).items() for k, v in m.items()}

"""Validation during training: the val split's metrics, computed the way ``zorro evaluate`` computes them."""

from __future__ import annotations

from accelerate import Accelerator

from ..evaluation.predict import contrastive_metrics, embed, embed_views, head_metrics, intra_metrics, predict
from .setup import RunSetup


def validation_metrics(setup: RunSetup, acc: Accelerator) -> dict[str, float]:
    """Flat ``{"<head>/<metric>": v}`` (fine-tuning) or contrastive metrics (pre-training) on the val split."""
    if setup.val_set is None or len(setup.val_set) == 0:
        return {}
    model = setup.model
    bs = setup.recipe.eval.batch_size
    if model.heads is None:
        assert model.projectors is not None
        if setup.recipe.train.contrastive == "intra":
            return intra_metrics(*embed_views(model, setup.val_set, acc, bs), float(model.projectors.temperature))
        return contrastive_metrics(embed(model, setup.val_set, acc, bs), float(model.projectors.temperature))
    targets, scores = predict(model, setup.val_set, acc, bs, setup.multilabel)
    return {f"{h}/{k}": v for h, m in head_metrics(targets, scores, setup.multilabel).items() for k, v in m.items()}

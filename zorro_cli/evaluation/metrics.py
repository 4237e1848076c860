"""Evaluation metrics (pure functions over numpy arrays).

Legend: N clips, C classes. ``scores`` are ``[N, C]`` (logits or probabilities: only the order matters).

Multi-label (AudioSet): mAP over the classes that have at least one positive, mAUC over the classes
with both positives and negatives, and d' = sqrt(2) * Φ⁻¹(mAUC) — computed with scikit-learn's
``average_precision_score`` / ``roc_auc_score`` and scipy's normal quantile, the implementations the
AudioSet literature (AST, CAV-MAE, AudioMAE) reports with, so numbers are comparable.

Single-label (VGGSound, Kinetics-400, ESC-50): top-1, top-5 and mean-class accuracy (the mean over
classes present in the targets of the per-class recall).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score


def _check(scores: np.ndarray, n: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != n:
        raise ValueError(f"scores must be [N, C] with N = {n}, got {scores.shape}")
    return scores


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes with at least one positive of the average precision; ``targets`` ``[N, C]`` 0/1."""
    targets = np.asarray(targets)
    scores = _check(scores, targets.shape[0])
    cols = np.flatnonzero(targets.sum(0) > 0)
    if cols.size == 0:
        return math.nan
    return float(np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in cols]))


def mean_auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean ROC AUC over classes that have both positives and negatives."""
    targets = np.asarray(targets)
    scores = _check(scores, targets.shape[0])
    pos = targets.sum(0)
    cols = np.flatnonzero((pos > 0) & (pos < targets.shape[0]))
    if cols.size == 0:
        return math.nan
    return float(np.mean([roc_auc_score(targets[:, c], scores[:, c]) for c in cols]))


def d_prime(auc: float) -> float:
    """Sensitivity index from an AUC: ``sqrt(2) * Φ⁻¹(auc)`` (0 at chance, +inf at AUC 1)."""
    if math.isnan(auc):
        return math.nan
    return float(math.sqrt(2.0) * norm.ppf(auc))


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of clips whose label is among the ``k`` highest scores (ties broken by class index)."""
    labels = np.asarray(labels)
    scores = _check(scores, labels.shape[0])
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of the top-1 recall of that class."""
    labels = np.asarray(labels)
    pred = np.argmax(_check(scores, labels.shape[0]), axis=1)
    return float(np.mean([np.mean(pred[labels == c] == c) for c in np.unique(labels)]))


def multilabel_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """``{"mAP", "mAUC", "d_prime"}`` for multi-hot targets."""
    auc = mean_auc(scores, targets)
    return {"mAP": mean_average_precision(scores, targets), "mAUC": auc, "d_prime": d_prime(auc)}


def single_label_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"top1", "top5", "mean_class_acc"}`` for class-index labels; no ``top5`` with 5 classes or fewer
    (it would be 1.0 whatever the model does)."""
    out = {"top1": top_k_accuracy(scores, labels, 1)}
    if np.asarray(scores).shape[-1] > 5:
        out["top5"] = top_k_accuracy(scores, labels, 5)
    out["mean_class_acc"] = mean_class_accuracy(scores, labels)
    return out


def compute_metrics(scores: np.ndarray, targets: np.ndarray, multilabel: bool) -> dict[str, float]:
    """The metrics of the task type (see module docstring)."""
    return multilabel_metrics(scores, targets) if multilabel else single_label_metrics(scores, targets)


def per_class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AP of every class (NaN where a class has no positive), for per-class plots."""
    targets = np.asarray(targets)
    scores = _check(scores, targets.shape[0])
    return np.array([average_precision_score(targets[:, c], scores[:, c]) if targets[:, c].any() else math.nan
                     for c in range(targets.shape[1])])


def confusion_matrix(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` counts, row = true class, column = predicted class."""
    labels = np.asarray(labels)
    pred = np.argmax(_check(scores, labels.shape[0]), axis=1)
    out = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(out, (labels, pred), 1)
    return out

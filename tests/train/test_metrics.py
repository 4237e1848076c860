"""Metrics against hand-computed literal cases, a perfect and a random predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zorro_cli.evaluation.metrics import (
    confusion_matrix,
    d_prime,
    mean_auc,
    mean_average_precision,
    mean_class_accuracy,
    multilabel_metrics,
    per_class_average_precision,
    single_label_metrics,
    top_k_accuracy,
)


def test_average_precision_hand_computed() -> None:
    # class 0: ranking by score = [pos, neg, pos] -> precisions at the positives 1/1 and 2/3 -> AP 5/6
    # class 1: ranking [neg, pos, neg]                 -> precision at the positive 1/2     -> AP 1/2
    # class 2: no positive -> excluded from the mean
    scores = np.array([[0.9, 0.8, 0.1], [0.5, 0.6, 0.2], [0.3, 0.1, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert mean_average_precision(scores, targets) == pytest.approx((5 / 6 + 1 / 2) / 2)
    ap = per_class_average_precision(scores, targets)
    assert ap[:2] == pytest.approx([5 / 6, 1 / 2]) and math.isnan(ap[2])


def test_auc_and_d_prime_hand_computed() -> None:
    # class 0: positives score 0.9, 0.3; negative 0.5 -> 1 of 2 (pos, neg) pairs ordered -> AUC 0.5
    # class 1: positive 0.9 vs negatives 0.1, 0.2 -> both pairs ordered -> AUC 1.0
    scores = np.array([[0.9, 0.1], [0.5, 0.9], [0.3, 0.2]])
    targets = np.array([[1, 0], [0, 1], [1, 0]])
    assert mean_auc(scores, targets) == pytest.approx((0.5 + 1.0) / 2)
    assert d_prime(0.5) == pytest.approx(0.0)
    assert d_prime(0.75) == pytest.approx(math.sqrt(2) * 0.6744897501960817)
    m = multilabel_metrics(scores, targets)
    assert m["d_prime"] == pytest.approx(d_prime(0.75))


def test_top_k_and_mean_class_accuracy_hand_computed() -> None:
    scores = np.array([
        [0.1, 0.7, 0.2],   # label 1: top-1 right
        [0.6, 0.3, 0.1],   # label 1: top-1 wrong, top-2 right
        [0.2, 0.3, 0.5],   # label 2: right
        [0.5, 0.4, 0.1],   # label 0: right
    ])
    labels = np.array([1, 1, 2, 0])
    assert top_k_accuracy(scores, labels, 1) == pytest.approx(3 / 4)
    assert top_k_accuracy(scores, labels, 2) == pytest.approx(1.0)
    # per class recall: class0 1/1, class1 1/2, class2 1/1 -> 5/6
    assert mean_class_accuracy(scores, labels) == pytest.approx(5 / 6)
    assert top_k_accuracy(scores, labels, 5) == 1.0  # k capped at C
    assert set(single_label_metrics(scores, labels)) == {"top1", "mean_class_acc"}  # no top5 with 3 classes
    assert set(single_label_metrics(np.eye(6)[[0, 1]], np.array([0, 1]))) == {"top1", "top5", "mean_class_acc"}
    assert confusion_matrix(scores, labels, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def test_perfect_and_random_predictors() -> None:
    rng = np.random.default_rng(0)
    targets = (rng.random((400, 6)) < 0.3).astype(int)
    perfect = targets + 0.01 * rng.random(targets.shape)
    m = multilabel_metrics(perfect, targets)
    assert m["mAP"] == pytest.approx(1.0) and m["mAUC"] == pytest.approx(1.0) and m["d_prime"] == math.inf
    rand = multilabel_metrics(rng.random(targets.shape), targets)
    assert rand["mAP"] == pytest.approx(targets.mean(), abs=0.08)  # AP of noise ~ positive rate
    assert rand["mAUC"] == pytest.approx(0.5, abs=0.06) and abs(rand["d_prime"]) < 0.25
    labels = rng.integers(0, 10, 1000)
    assert single_label_metrics(np.eye(10)[labels], labels) == {"top1": 1.0, "top5": 1.0, "mean_class_acc": 1.0}
    chance = single_label_metrics(rng.random((1000, 10)), labels)
    assert chance["top1"] == pytest.approx(0.1, abs=0.04) and chance["top5"] == pytest.approx(0.5, abs=0.06)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"scores must be \[N, C\]"):
        top_k_accuracy(np.zeros(3), np.zeros(3, dtype=int), 1)

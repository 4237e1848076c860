"""Evaluation plots (PNG): per-class AP or a confusion matrix per head, and training curves.

matplotlib with the non-interactive Agg backend. Each plot is a ``*_figure`` function returning the
matplotlib ``Figure`` (what tests read: titles, axes, ticks) and a ``*_png`` function that saves it and
returns the path. Titles say what is shown: the run, the split and the input condition.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(names: Sequence[str], i: int, width: int = 18) -> str:
    name = names[i] if i < len(names) else str(i)
    return name if len(name) <= width else name[: width - 1] + "…"


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def confusion_png(matrix: np.ndarray, names: Sequence[str], title: str, path: Path) -> Path:
    """:func:`confusion_figure` saved as ``path``."""
    return _save(confusion_figure(matrix, names, title), path)


def confusion_figure(matrix: np.ndarray, names: Sequence[str], title: str) -> Figure:
    """Row-normalised confusion matrix (row = true class); at most 40 classes are labelled."""
    plt = _plt()
    n = matrix.shape[0]
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    size = min(14.0, 3.0 + 0.35 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    if n <= 40:
        ax.set_xticks(range(n), [_label(names, i) for i in range(n)], rotation=90, fontsize=8)
        ax.set_yticks(range(n), [_label(names, i) for i in range(n)], fontsize=8)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    return fig


def per_class_ap_png(ap: np.ndarray, names: Sequence[str], title: str, path: Path, top: int = 30) -> Path:
    """:func:`per_class_ap_figure` saved as ``path``."""
    return _save(per_class_ap_figure(ap, names, title, top), path)


def per_class_ap_figure(ap: np.ndarray, names: Sequence[str], title: str, top: int = 30) -> Figure:
    """Horizontal bars of the ``top`` best and worst classes by AP (classes without positives skipped)."""
    plt = _plt()
    valid = [i for i in range(len(ap)) if not math.isnan(ap[i])]
    order = sorted(valid, key=lambda i: ap[i])
    shown = order if len(order) <= 2 * top else order[:top] + order[-top:]
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.25 * len(shown) + 1)))
    ax.barh(range(len(shown)), [ap[i] for i in shown], color="tab:blue")
    ax.set_yticks(range(len(shown)), [_label(names, i, 30) for i in shown], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("average precision")
    ax.set_title(f"{title} (mAP {np.mean([ap[i] for i in valid]):.3f} over {len(valid)} classes)")
    fig.tight_layout()
    return fig


def read_metrics(metrics_jsonl: Path) -> list[dict[str, float]]:
    """The records of a run's ``metrics.jsonl`` (empty when there is none)."""
    if not metrics_jsonl.is_file():
        return []
    return [json.loads(line) for line in metrics_jsonl.read_text().splitlines() if line.strip()]


def training_curves_png(metrics_jsonl: Path, path: Path, title: str = "") -> Path | None:
    """:func:`training_curves_figure` of a run's ``metrics.jsonl`` saved as ``path`` (None: nothing to draw)."""
    fig = training_curves_figure(read_metrics(metrics_jsonl), title)
    return None if fig is None else _save(fig, path)


def _series(ax: Axes, rows: list[dict[str, float]], keys: list[str], label: Callable[[str], str]) -> None:
    """One line per key against the step; markers where a series has few points (one point is a dot, not
    nothing); step ticks are whole steps: the steps themselves when there are few."""
    steps: set[int] = set()
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        x, y = zip(*pts, strict=True)
        steps |= {int(v) for v in x}
        ax.plot(x, y, marker="o" if len(pts) <= 12 else None, label=label(key),
                linewidth=1.5 if key == "loss" else 1.0)
    if len(steps) <= 8:  # (MaxNLocator falls back to fractions when a range holds few integers)
        ax.set_xticks(sorted(steps))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.legend(fontsize=8)


def training_curves_figure(rows: list[dict[str, float]], title: str = "") -> Figure | None:
    """Loss (per head) and validation metrics (one main metric per head) against the step; ``title`` on
    top (the run, and what it was trained on)."""
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if any(k.startswith("val/") for k in r)]
    if not train:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2 if val else 1, figsize=(12 if val else 6, 4.4), squeeze=False)
    ax = axes[0][0]
    _series(ax, train, sorted({k for r in train for k in r if k == "loss" or k.startswith("loss/")}), str)
    ax.set_ylabel("training loss")
    ax.set_title("training loss (mean over each log window)", fontsize=9)
    if val:
        ax = axes[0][1]
        main = ("/top1", "/mAP", "a2v_top1", "v2a_top1")  # one line per head: its main metric (one scale, 0-1)
        keys = sorted({k for r in val for k in r if k.startswith("val/") and k.endswith(main)})
        _series(ax, val, keys, lambda k: k.removeprefix("val/"))
        ax.set_ylabel("validation")
        steps = sorted({int(r["step"]) for r in val})
        ax.set_title(f"validation at step{'s' if len(steps) > 1 else ''} {', '.join(map(str, steps[:6]))}"
                     + (" ..." if len(steps) > 6 else ""), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

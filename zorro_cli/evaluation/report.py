"""How ``zorro evaluate`` shows its results: a rich table on stderr and PNG plots."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from .metrics import confusion_matrix, per_class_average_precision


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    """One row per head, one column per metric (stderr: stdout carries the JSON)."""
    heads = result["heads"]
    metrics = list(next(iter(heads.values()))) if heads else []
    inputs = " + ".join(result["inputs"])
    title = (f"{result['split']}: {result['num_clips']} clips, {result['views']} views each, inputs {inputs}"
             + (f" (missing {result['missing']})" if result.get("missing") else ""))
    table = Table(title=title)
    table.add_column("head")
    for m in metrics:
        table.add_column(m, justify="right")
    for head, values in heads.items():
        table.add_row(head, *(f"{values[m]:.4f}" for m in metrics))
    (console or Console(stderr=True)).print(table)


def print_predictions(records: list[dict[str, Any]], console: Console | None = None) -> None:
    """``zorro predict``'s table: one row per file, each head's best label and score (or the failure)."""
    heads = list(dict.fromkeys(h for r in records if r["ok"] for h in r["heads"]))
    table = Table(title=f"{len(records)} files, {sum(not r['ok'] for r in records)} failed")
    for name in ("file", "inputs", *heads):
        table.add_column(name, overflow="fold")
    for r in records:
        if not r["ok"]:
            table.add_row(r["file"], f"failed: {r['error']}", *[""] * len(heads))
            continue
        best = {h: f"{r['heads'][h][0]['label']} {r['heads'][h][0]['score']:.3f}" if h in r["heads"] else "-"
                for h in heads}
        table.add_row(r["file"], "+".join(r["inputs"]), *(best[h] for h in heads))
    if console is None:  # off a terminal (logs, CI): wide enough not to fold file names
        console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    console.print(table)


def _run_dir(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (the folder holding metrics.jsonl), if any."""
    for p in [checkpoint, *checkpoint.resolve().parents]:
        if (p / "metrics.jsonl").is_file():
            return p
    return None


def write_plots(folder: Path, checkpoint: Path, targets: np.ndarray, scores: dict[str, np.ndarray],
                names: Sequence[str], multilabel: bool) -> list[str]:
    """Per head: per-class AP (multi-label) or a confusion matrix (single-label); training curves."""
    from .plots import confusion_png, per_class_ap_png, training_curves_png

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for head, s in scores.items():
        if multilabel:
            path = per_class_ap_png(per_class_average_precision(s, targets), names, f"{head} head",
                                    folder / f"per_class_ap_{head}.png")
        else:
            path = confusion_png(confusion_matrix(s, targets, len(names)), names, f"{head} head",
                                 folder / f"confusion_{head}.png")
        written.append(str(path))
    run_dir = _run_dir(checkpoint)
    if run_dir is not None:
        curves = training_curves_png(run_dir / "metrics.jsonl", folder / "training_curves.png")
        if curves is not None:
            written.append(str(curves))
    return written

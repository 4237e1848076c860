"""How ``zorro evaluate`` shows its results: a rich table on stderr and PNG plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from ..output import stderr_console
from .metrics import confusion_matrix, per_class_average_precision


def print_table(result: dict[str, Any], console: Console | None = None) -> None:
    """One row per head, one column per metric (stderr: stdout carries the JSON)."""
    heads = result["heads"]
    metrics = list(next(iter(heads.values()))) if heads else []
    inputs = " + ".join(result["inputs"])
    title = (f"{result['split']}: {result['num_clips']} clips, {result['views']} view{'s' if result['views'] != 1 else ''} each, inputs {inputs}"
             + (f" (missing {result['missing']})" if result.get("missing") else ""))
    table = Table()
    table.add_column("head")
    for m in metrics:
        table.add_column(m, justify="right")
    for head, values in heads.items():
        table.add_row(head, *(f"{values[m]:.4f}" for m in metrics))
    out = console or stderr_console()
    out.print(title, highlight=False, markup=False)
    out.print(table)


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
    (console or stderr_console()).print(table)


def _run_dir(checkpoint: Path) -> Path | None:
    """The run directory a checkpoint belongs to (the folder holding metrics.jsonl), if any."""
    for p in [checkpoint, *checkpoint.resolve().parents]:
        if (p / "metrics.jsonl").is_file():
            return p
    return None


def _init_run(run_dir: Path) -> Path | None:
    """The run a fine-tuning run was warm-started from (``--init`` in its run.json), when it is a run."""
    try:
        init = json.loads((run_dir / "run.json").read_text()).get("init")
    except (OSError, ValueError):
        return None
    return _run_dir(Path(init)) if init and Path(init).exists() else None


def condition(inputs: Sequence[str], missing: str | None) -> str:
    """The input condition in words: ``audio + video``, ``audio only (video missing)``."""
    shown = " + ".join(inputs)
    return f"{shown} only ({missing} missing)" if missing else shown if len(inputs) > 1 else f"{shown} only"


def write_plots(folder: Path, checkpoint: Path, targets: np.ndarray, scores: dict[str, np.ndarray],
                names: Sequence[str], multilabel: bool, split: str = "", inputs: str = "") -> list[str]:
    """Per head: per-class AP (multi-label) or a confusion matrix (single-label), titled with the run, the
    split and the input condition; the training curves of the run, and of the run it started from."""
    from .plots import confusion_png, per_class_ap_png, training_curves_png

    folder.mkdir(parents=True, exist_ok=True)
    run_dir = _run_dir(checkpoint)
    run = (run_dir or checkpoint).name
    where = f"{split} split, run {run}, inputs {inputs}"
    written = []
    for head, s in scores.items():
        if multilabel:
            path = per_class_ap_png(per_class_average_precision(s, targets), names, f"{head} head\n{where}",
                                    folder / f"per_class_ap_{head}.png")
        else:
            path = confusion_png(confusion_matrix(s, targets, len(names)), names, f"{head} head\n{where}",
                                 folder / f"confusion_{head}.png")
        written.append(str(path))
    if run_dir is not None:
        for source, name in ((run_dir, "training_curves.png"), (_init_run(run_dir), "pretraining_curves.png")):
            if source is None:
                continue
            title = f"run {source.name}: {_mode(source)} ({_data_name(source)})"
            curves = training_curves_png(source / "metrics.jsonl", folder / name, title)
            if curves is not None:
                written.append(str(curves))
    return written


def _mode(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "run.json").read_text()).get("mode", "training"))
    except (OSError, ValueError):
        return "training"


def _data_name(run_dir: Path) -> str:
    """What a run trained on: its cache folder, train split and inputs (from run.json and recipe.yaml)."""
    try:
        data = json.loads((run_dir / "run.json").read_text()).get("data") or "?"
        section = yaml.safe_load((run_dir / "recipe.yaml").read_text())["data"]
        split, inputs = section["train_split"], " + ".join(section["modalities"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return "train split"
    return f"{Path(data).name}, {split} split, inputs {inputs}"

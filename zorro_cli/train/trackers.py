"""Experiment trackers through Accelerate's own ``log_with`` (TensorBoard, MLflow, W&B).

The recipe's ``log.trackers`` lists them. A tracker whose package is not installed is left out with one
line on stderr saying what to install; the run goes on. Where each writes, inside the run directory:

    tb/       TensorBoard events (``tensorboard --logdir runs/``)
    mlruns/   MLflow's local file store (``mlflow ui --backend-store-uri runs/x/mlruns``), unless
              ``MLFLOW_TRACKING_URI`` points elsewhere
    wandb/    W&B's run files (online or offline as ``WANDB_MODE`` says)
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# tracker -> (the module that must import, what to install)
PACKAGES: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "pip install tensorboard"),
    "mlflow": ("mlflow", "pip install mlflow"),
    "wandb": ("wandb", "pip install wandb"),
}
TB_FOLDER = "tb"


def available_trackers(wanted: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(usable trackers, one message per tracker left out)``, in the recipe's order."""
    usable, notes = [], []
    for name in wanted:
        module, install = PACKAGES[name]
        if importlib.util.find_spec(module) is not None:
            usable.append(name)
        else:
            notes.append(f"log.trackers: {name} is not installed ({install}); this run logs without it")
    return usable, notes


def init_kwargs(trackers: Sequence[str], run_dir: Path, start_step: int = 0) -> dict[str, dict[str, Any]]:
    """Per-tracker keyword arguments for ``Accelerator.init_trackers`` that keep files in ``run_dir``; a run
    resumed at ``start_step`` drops TensorBoard events past it (a killed run's), as ``metrics.jsonl`` does."""
    out: dict[str, dict[str, Any]] = {}
    if "tensorboard" in trackers and start_step:
        out["tensorboard"] = {"purge_step": start_step + 1}
    if "wandb" in trackers:
        out["wandb"] = {"dir": str(run_dir), "name": run_dir.name}
    if "mlflow" in trackers:
        out["mlflow"] = {"run_name": run_dir.name}
    return out


def point_mlflow_at(run_dir: Path, mode: str) -> None:
    """A local file store in ``run_dir/mlruns`` unless the user set ``MLFLOW_TRACKING_URI``; the experiment
    is ``zorro-<mode>`` unless ``MLFLOW_EXPERIMENT_NAME`` says otherwise (Accelerate reads that first)."""
    if not os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        os.environ["MLFLOW_EXPERIMENT_NAME"] = f"zorro-{mode}"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return
    import mlflow

    # MLflow 3 refuses a file store unless asked (its database store needs SQLAlchemy, which mlflow-skinny
    # lacks); a file store inside the run folder is what a laptop run wants, so ask for it.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())


def for_tracker(name: str, values: dict[str, float]) -> dict[str, float]:
    """``values`` as tracker ``name`` can store them: MLflow's file store keeps a metric as a file named like
    it, so ``loss`` and ``loss/audio_video`` cannot both exist; there ``/`` becomes ``.``."""
    return {k.replace("/", "."): v for k, v in values.items()} if name == "mlflow" else values


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numeric values of a metrics record, without its ``step``."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}

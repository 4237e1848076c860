"""Trackers through Accelerate's ``log_with``, chosen by ``log.trackers``: the files TensorBoard and MLflow
write (each skipped when its package is absent) and the one-line message for one that is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zorro_cli.train import trackers

ARGS = ["--recipe", "tiny", "train.max_steps=3", "log.every=1", "data.val_holdout=0"]


def _pretrain(tiny_cache: Path, out: Path, *extra: str, env: dict[str, str | None] | None = None
              ) -> subprocess.CompletedProcess:
    """``zorro pretrain`` as a subprocess; ``env`` values of None remove the variable."""
    import os

    full = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "zorro_cli.cli", "pretrain", "--data", str(tiny_cache), "--out",
                           str(out), *ARGS, *extra], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in full.items() if v is not None})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _logged(run: Path) -> dict[str, dict[int, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        for k, v in trackers.scalars(r).items():
            out.setdefault(k, {})[r["step"]] = v
    return out


def test_a_tracker_not_installed_is_named_once_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(trackers.PACKAGES, "wandb", ("no_such_module_for_zorro", "pip install wandb"))
    usable, notes = trackers.available_trackers(["wandb"])
    assert usable == [] and notes == ["log.trackers: wandb is not installed (pip install wandb); "
                                      "this run logs without it"]


def test_scalars_and_init_kwargs() -> None:
    assert trackers.scalars({"step": 3, "loss": 1, "lr": 0.5, "flag": True, "name": "x"}) == {"loss": 1.0, "lr": 0.5}
    assert trackers.init_kwargs(["tensorboard"], Path("/r/run1")) == {}
    assert trackers.init_kwargs(["tensorboard"], Path("/r/run1"), start_step=50) == {"tensorboard": {"purge_step": 51}}
    assert trackers.init_kwargs(["wandb", "mlflow"], Path("/r/run1")) == {
        "wandb": {"dir": "/r/run1", "name": "run1"}, "mlflow": {"run_name": "run1"}}


def test_metric_names_as_each_tracker_stores_them() -> None:
    values = {"loss": 1.0, "loss/audio_video": 2.0, "val/audio/top1": 0.5}
    assert trackers.for_tracker("tensorboard", values) == values
    assert trackers.for_tracker("mlflow", values) == {"loss": 1.0, "loss.audio_video": 2.0, "val.audio.top1": 0.5}


def test_mlflow_writes_a_local_file_store_in_the_run(tmp_path: Path, tiny_cache: Path) -> None:
    pytest.importorskip("mlflow", reason="mlflow is an optional tracker (pip install mlflow)")
    run = tmp_path / "ml"
    _pretrain(tiny_cache, run, "log.trackers=[mlflow]", env={"MLFLOW_TRACKING_URI": None, "MLFLOW_EXPERIMENT_NAME": None})
    metric_files = {p.name: p for p in (run / "mlruns").rglob("metrics/*") if p.is_file()}
    assert {"loss", "lr", "loss.audio_video"} <= set(metric_files)  # "/" is "." in MLflow's file names
    steps = [int(line.split()[2]) for line in metric_files["loss"].read_text().splitlines()]
    assert steps == sorted(_logged(run)["loss"])


def test_wandb_offline_writes_its_run_files_in_the_run(tmp_path: Path, tiny_cache: Path) -> None:
    pytest.importorskip("wandb", reason="wandb is an optional tracker (pip install wandb)")
    run = tmp_path / "wb"
    _pretrain(tiny_cache, run, "log.trackers=[wandb]", env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert list((run / "wandb").glob("offline-run-*"))


def test_missing_tracker_message_in_a_real_run(tmp_path: Path, tiny_cache: Path) -> None:
    import importlib.util

    absent = [n for n in ("mlflow", "wandb") if importlib.util.find_spec(n) is None]
    if not absent:
        pytest.skip("every optional tracker is installed here")
    from typer.testing import CliRunner

    from zorro_cli.cli import app

    res = CliRunner().invoke(app, ["pretrain", "--data", str(tiny_cache), "--out", str(tmp_path / "r"), *ARGS,
                                   f"log.trackers=[{absent[0]}]"])
    assert res.exit_code == 0, res.output
    assert res.stderr.count(f"log.trackers: {absent[0]} is not installed (pip install {absent[0]})") == 1
    assert (tmp_path / "r" / "metrics.jsonl").is_file() and res.stdout.count("\n") == 1

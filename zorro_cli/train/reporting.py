"""What a run writes while it runs: the run directory's records, progress on stderr, metrics, summary.

Run directory (main process only)::

    recipe.yaml      the resolved recipe (load it back with --recipe)
    run.json         command line, versions, world size, start time, warm-start report of the latest
                     invocation, and ``invocations``: every invocation (fresh start, each resume) in order
    metrics.jsonl    one JSON object per logged step ({"step", "loss", "loss/<head>", "lr", "clips_per_s",
                     "data_time_s", "step_time_s"}, averaged over the steps since the previous record)
                     and per validation ({"step", "val/<head>/<metric>"}); a resumed run first drops the
                     rows past its checkpoint's step, so no step is logged twice
    tb/, mlruns/, wandb/   the trackers of ``log.trackers`` (train/trackers.py), the same records
    checkpoints/     see train/checkpoint.py

Progress goes to stderr: a rich bar on a TTY, otherwise a plain line every ``log.every`` steps that is
never wrapped (train/progress.py); the summary for scripts goes to stdout as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .. import __version__
from ..atomic import write_text_atomic
from ..output import stderr_console
from ..recipes import dump_recipe, recipe_to_dict
from .checkpoint import Position
from .progress import LogWindow, eta_seconds, progress_line
from .runfolder import record_invocation, trim_metrics
from .setup import RunSetup
from .task import TrainTask
from .trackers import TB_FOLDER, available_trackers, for_tracker, init_kwargs, point_mlflow_at, scalars


def versions() -> dict[str, str]:
    import accelerate

    return {"zorro": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "accelerate": accelerate.__version__, "platform": platform.platform()}


def pick_best_metric(configured: str | None, mode: str, multilabel: bool, heads: list[str]) -> str:
    """``train.best_metric`` or a default: contrastive loss (pre-training), else the first head's main metric."""
    if configured:
        return configured if configured.startswith("val/") else f"val/{configured}"
    if mode == "pretrain":
        return "val/contrastive_loss"
    head = next((h for h in ("global", "fusion", "audio", "video") if h in heads), heads[0])
    return f"val/{head}/{'mAP' if multilabel else 'top1'}"


class RunLog:
    """Run-directory records, progress and metrics for one training run (quiet on non-main processes)."""

    def __init__(self, task: TrainTask, setup: RunSetup, acc: Accelerator, total: int, start_step: int,
                 resumed_from: Path | None = None) -> None:
        self.acc, self.task, self.total = acc, task, total
        self.main = acc.is_main_process
        assert task.out_dir is not None, "a run that writes needs a run directory"
        self.out: Path = task.out_dir
        self.console = stderr_console()
        self.every = task.recipe.log.every
        heads = list(setup.model.output_names)
        self.best_key = pick_best_metric(task.recipe.train.best_metric, task.mode, setup.multilabel, heads)
        self.minimise = "loss" in self.best_key
        self.last_checkpoint: Path | None = resumed_from  # named when the run stops before its next one
        self.last_val: dict[str, float] = {}
        self._best_now = False
        self.progress: Progress | None = None
        self.window = LogWindow()
        self.start_step = start_step
        # how the processes share the model: replicas (ddp), shards (fsdp), or one process alone
        self.strategy = task.recipe.train.strategy if acc.num_processes > 1 else "single"
        self.t_start = time.time()
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / "recipe.yaml", dump_recipe(task.recipe))
        run = {"command": list(task.command), "mode": task.mode, "versions": versions(),
               "world_size": acc.num_processes, "strategy": self.strategy, "device": str(acc.device), "data": str(task.data_dir),
               "init": task.init, "init_report": setup.init_report, "excluded": setup.excluded,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "total_steps": total, "start_step": start_step,
               "resumed_from": None if resumed_from is None else str(resumed_from)}
        record_invocation(self.out / "run.json", run)
        dropped = trim_metrics(self.out / "metrics.jsonl", start_step)
        self.metrics = (self.out / "metrics.jsonl").open("a")
        self._start_trackers(start_step)
        style = task.recipe.log.progress
        if style == "bar" or (style == "auto" and sys.stderr.isatty()):
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=self.console)
            self.progress.start()
            self.bar = self.progress.add_task(task.mode, total=total, completed=start_step, info="")
        if dropped:
            self.info(f"metrics.jsonl: dropped {dropped} row(s) past step {start_step}, where this run continues")
        self.info(f"{task.mode}: {total} steps on {acc.num_processes} process(es) ({self.strategy}), {acc.device}; "
                  f"run dir {self.out}")

    def _start_trackers(self, start_step: int) -> None:
        """The trackers the Accelerator was built with (``log_with``); a line for each one not installed."""
        for note in available_trackers(self.task.recipe.log.trackers)[1]:
            self.info(note)
        names = [str(t) for t in getattr(self.acc, "log_with", []) or []]
        if not names:
            return
        if "mlflow" in names:
            point_mlflow_at(self.out, self.task.mode)
        config = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                  for k, v in _flatten(recipe_to_dict(self.task.recipe)).items()}
        self.acc.init_trackers(TB_FOLDER, config=config, init_kwargs=init_kwargs(names, self.out, start_step))

    def info(self, msg: str) -> None:
        if self.main:
            self.console.print(msg, highlight=False, markup=False)

    def _write(self, record: dict[str, Any]) -> None:
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()
        values = scalars(record)
        for tracker in self.acc.trackers:  # each tracker on the main process only (Accelerate's decorator)
            tracker.log(for_tracker(tracker.name, values), step=record["step"])

    def step(self, step: int, stats: dict[str, float]) -> None:
        """One optimiser step's stats; every ``log.every`` steps (and at the first and last) a record and a
        line with the means over the steps since the previous one."""
        if not self.main:
            return
        self.window.add(stats)
        means = self.window.means()
        if self.progress is not None:
            self.progress.update(self.bar, completed=step,
                                 info=f"loss {means['loss']:.4f}  {means.get('clips_per_s', 0.0):.1f} clips/s")
        if step % self.every == 0 or step == self.total or step == 1:
            self._write({"step": step, **{k: round(v, 6) for k, v in means.items()}})
            self.window.reset()
            if self.progress is None:
                elapsed = time.time() - self.t_start
                self.info(progress_line(self.task.mode, step, self.total, means, elapsed,
                                        eta_seconds(step, self.start_step, self.total, elapsed)))

    def validation(self, pos: Position, metrics: dict[str, float]) -> None:
        self.last_val = {f"val/{k}": v for k, v in metrics.items()}
        value = self.last_val.get(self.best_key)
        self._best_now = False
        if value is not None and math.isfinite(value):
            better = pos.best_metric is None or (value < pos.best_metric if self.minimise else value > pos.best_metric)
            if better:
                pos.best_metric, pos.best_step, self._best_now = value, pos.step, True
        if self.main:
            self._write({"step": pos.step, **self.last_val})
            shown = "  ".join(f"{k.removeprefix('val/')} {v:.4f}" for k, v in self.last_val.items())
            self.info(f"validation at step {pos.step}: {shown}")

    def is_best(self, pos: Position) -> bool:
        return self._best_now and pos.best_step == pos.step

    def checkpoint_written(self, path: Path, pos: Position) -> None:
        self.last_checkpoint = path
        self._best_now = False
        self.info(f"checkpoint {path.name} (step {pos.step})")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.main:
            with contextlib.suppress(OSError):  # a full disk already stopped the run: that error is reported
                self.metrics.close()
            for tracker in self.acc.trackers:  # (not acc.end_training(): it ends the process group too)
                tracker.finish()

    def summary(self, pos: Position) -> dict[str, Any]:
        return {"run_dir": str(self.out), "mode": self.task.mode, "step": pos.step, "epoch": pos.epoch,
                "checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
                "best_metric": self.best_key if pos.best_metric is not None else None,
                "best_value": pos.best_metric, "best_step": pos.best_step, "val": self.last_val,
                "seconds": round(time.time() - self.t_start, 1)}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out

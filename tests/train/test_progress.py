"""The plain log line and its window (pure), against literal values; and the line as a run prints it off a
terminal: whole (never wrapped at 80 columns), with elapsed time, ETA and window means."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zorro_cli.train.progress import LogWindow, eta_seconds, format_duration, progress_line


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 4.6, 65.4, 599, 3600, 3725, 90061)] == \
        ["0:00", "0:05", "1:05", "9:59", "1:00:00", "1:02:05", "25:01:01"]


def test_eta_from_this_process_pace() -> None:
    assert eta_seconds(step=10, start_step=0, total=100, elapsed=20.0) == pytest.approx(180.0)
    assert eta_seconds(step=60, start_step=50, total=100, elapsed=5.0) == pytest.approx(20.0)  # resumed at 50
    assert eta_seconds(step=50, start_step=50, total=100, elapsed=1.0) is None


def test_window_means_losses_and_weights_the_rate_by_time() -> None:
    w = LogWindow()
    w.add({"loss": 2.0, "loss/audio": 1.0, "lr": 1e-4, "clips_per_s": 10.0, "step_time_s": 1.0, "data_time_s": 0.2})
    w.add({"loss": 1.0, "loss/audio": 0.5, "lr": 2e-4, "clips_per_s": 40.0, "step_time_s": 0.25, "data_time_s": 0.0})
    m = w.means()
    assert m["loss"] == pytest.approx(1.5) and m["loss/audio"] == pytest.approx(0.75)
    assert m["lr"] == 2e-4  # the schedule's last value, not a mean
    assert m["clips_per_s"] == pytest.approx(20 / 1.25)  # 20 clips in 1.25 s, not mean(10, 40) = 25
    assert m["step_time_s"] == pytest.approx(0.625) and m["data_time_s"] == pytest.approx(0.1)
    w.reset()
    w.add({"loss": 3.0, "clips_per_s": 8.0, "step_time_s": 0.5})
    assert w.means() == {"loss": 3.0, "step_time_s": 0.5, "clips_per_s": 8.0}


def test_progress_line_literal() -> None:
    means = {"loss": 1.23456, "lr": 5e-4, "clips_per_s": 12.34}
    assert progress_line("pretrain", 20, 400, means, 12.2, 228.0) == \
        "pretrain step 20/400 (5%) | loss 1.2346 | lr 5.00e-04 | 12.3 clips/s | elapsed 0:12 | eta 3:48"
    assert progress_line("finetune", 1, 3, {}, 0.0, None) == "finetune step 1/3 (33%) | elapsed 0:00 | eta ?"


LINE = re.compile(r"^pretrain step (\d+)/4 \(\d+%\) \| loss \d+\.\d{4} \| lr \d\.\d\de-\d\d \| \d+\.\d clips/s"
                  r" \| elapsed \d+:\d\d \| eta \d+:\d\d$")


def test_a_run_off_a_terminal_logs_whole_plain_lines(tmp_path: Path, tiny_cache: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "zorro_cli.cli", "pretrain", "--data", str(tiny_cache),
                           "--out", str(tmp_path / "run"), "train.max_steps=4", "log.every=2",
                           "data.val_holdout=0", "log.trackers=[]"],
                          capture_output=True, text=True, timeout=300, env={**_env(), "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert lines[0] == "using recipe 'tiny' (no --recipe given; see `zorro recipes`)"
    steps = [int(m[1]) for line in lines if (m := LINE.match(line))]
    assert steps == [1, 2, 4], proc.stderr
    # a message longer than 80 columns stays on one line (rich used to hard-wrap it off a terminal)
    warning = next(line for line in lines if line.startswith("warning: 7 contrastive negatives"))
    assert len(warning) > 80 and warning.endswith("(accumulation adds no negatives)")
    assert proc.stdout.count("\n") == 1


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}

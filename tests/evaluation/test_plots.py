"""Plots say what they show: titles with run, split and input condition, integer step ticks, a visible
marker for a single validation point, the pre-training curve drawn too. Read from the figure objects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zorro_cli.evaluation import plots
from zorro_cli.evaluation.report import condition, write_plots

ROWS = [{"step": 1, "loss": 2.0, "loss/audio": 1.0}, {"step": 3, "loss": 1.5, "loss/audio": 0.8},
        {"step": 6, "loss": 1.0, "loss/audio": 0.6},
        {"step": 6, "val/audio/top1": 0.5, "val/global/top1": 0.75, "val/global/mean_class_acc": 0.7}]


def test_one_validation_point_is_drawn_as_markers_on_integer_steps() -> None:
    fig = plots.training_curves_figure(ROWS, "run ft: finetune (cache, train split, inputs audio + video)")
    assert fig is not None and fig._suptitle is not None
    assert fig._suptitle.get_text() == "run ft: finetune (cache, train split, inputs audio + video)"
    train, val = fig.axes
    assert train.get_xlabel() == val.get_xlabel() == "step" and train.get_ylabel() == "training loss"
    assert [line.get_label() for line in train.get_lines()] == ["loss", "loss/audio"]
    assert [line.get_label() for line in val.get_lines()] == ["audio/top1", "global/top1"]  # main metric per head
    assert all(line.get_marker() == "o" and len(line.get_xdata()) == 1 for line in val.get_lines())
    assert val.get_title() == "validation at step 6"
    fig.canvas.draw()
    for ax in (train, val):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks  # (not 5.68 ... 6.32)
    assert list(val.get_xticks()) == [6] and list(train.get_xticks()) == [1, 3, 6]
    long = plots.training_curves_figure([{"step": s, "loss": 1.0} for s in range(1, 200, 7)])
    assert long is not None
    long.canvas.draw()
    assert all(float(t).is_integer() for t in long.axes[0].get_xticks())


def test_long_training_curves_have_no_markers() -> None:
    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 40)]
    fig = plots.training_curves_figure(rows)
    assert fig is not None and len(fig.axes) == 1 and fig.axes[0].get_lines()[0].get_marker() == "None"
    assert plots.training_curves_figure([{"step": 1, "val/x/top1": 0.5}]) is None


def _run(folder: Path, mode: str, init: str | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    (folder / "run.json").write_text(json.dumps({"mode": mode, "data": "/data/my-cache", "init": init}))
    (folder / "recipe.yaml").write_text("data:\n  train_split: train\n  modalities: [audio, video]\n")
    return folder


def test_evaluation_plots_name_split_run_and_condition(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures: dict[str, object] = {}

    def keep(fig, path: Path) -> Path:
        figures[path.name] = fig
        return path

    monkeypatch.setattr(plots, "_save", keep)
    pre = _run(tmp_path / "runs" / "ssl", "pretrain", None)
    ft = _run(tmp_path / "runs" / "ft", "finetune", str(pre))
    scores = {"audio": np.eye(3)[[0, 1, 2, 1]], "global": np.eye(3)[[0, 1, 2, 2]]}
    written = write_plots(tmp_path / "plots", ft, np.array([0, 1, 2, 2]), scores, ["a", "b", "c"], False,
                          "test", condition(["audio"], "video"))
    assert sorted(Path(p).name for p in written) == sorted(figures) == [
        "confusion_audio.png", "confusion_global.png", "pretraining_curves.png", "training_curves.png"]
    title = figures["confusion_global.png"].axes[0].get_title()
    assert title == "global head\ntest split, run ft, inputs audio only (video missing)"
    assert figures["training_curves.png"]._suptitle.get_text() == \
        "run ft: finetune (my-cache, train split, inputs audio + video)"
    assert figures["pretraining_curves.png"]._suptitle.get_text().startswith("run ssl: pretrain (")


def test_condition_in_words() -> None:
    assert condition(["audio", "video"], None) == "audio + video"
    assert condition(["audio"], None) == "audio only"
    assert condition(["video"], "audio") == "video only (audio missing)"

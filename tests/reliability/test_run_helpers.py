"""The pure helpers behind the run-folder and evaluation guarantees, against literal values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zorro_cli.evaluation.compat import (
    MismatchError,
    cache_mismatches,
    check_model_config,
    label_mismatch,
    settings_mismatches,
)
from zorro_cli.evaluation.predict import NonFiniteScores, require_finite
from zorro_cli.train.checkpoint import nonfinite_tensors, pointer_target
from zorro_cli.train.runfolder import clean_stale, record_invocation, trim_metrics


def test_label_mismatch() -> None:
    assert label_mismatch(["a", "b"], ["a", "b"]) is None
    assert label_mismatch(["a", "b"], ["b", "a"]) == "the same labels in another order (label 0 is 'b', checkpoint: 'a')"
    assert label_mismatch(["a", "b"], ["a", "c"]) == "other labels (label 1 is 'c', checkpoint: 'b')"
    assert label_mismatch(["a", "b"], ["a"]) == "1 labels (checkpoint: 2)"


def test_settings_and_cache_mismatches() -> None:
    trained = {"sample_rate": 16000, "hop_length": 160, "fps": 4.0, "mel_mean": -3.0}
    assert settings_mismatches(trained, {"sample_rate": 16000, "hop_length": 160, "fps": 4, "mel_mean": 9}) == []
    assert settings_mismatches(trained, {"sample_rate": 22050, "hop_length": 160, "fps": 2.0}) == \
        ["sample_rate 22050 (checkpoint: 16000)", "fps 2.0 (checkpoint: 4.0)"]
    config = {"labels": ["a", "b"], "multilabel": False, "preprocessing": trained}
    assert cache_mismatches(config, ["a", "b"], {"sample_rate": 16000}, False) == []
    assert cache_mismatches(config, ["b", "a"], {"short_side": 40}, True) == [
        "the same labels in another order (label 0 is 'b', checkpoint: 'a')", "multi-label (checkpoint: single-label)"]
    assert cache_mismatches({"model": {}}, ["x"], {"fps": 1}) == []  # an old checkpoint records neither


def test_check_model_config() -> None:
    check_model_config({"model": {"num_classes": 2, "n_mels": 32}, "labels": ["a", "b"],
                        "preprocessing": {"n_mels": 32}}, what="c")
    check_model_config({"model": {"num_classes": 0}, "labels": ["a", "b"]}, what="c")  # pre-training: no heads
    with pytest.raises(MismatchError) as info:
        check_model_config({"model": {"num_classes": 2, "n_mels": 32}, "labels": ["a", "b", "c"],
                            "preprocessing": {"n_mels": 64}}, what="c")
    assert str(info.value) == ("c: config.json contradicts its model: 3 labels for a model with 2 classes; "
                               "preprocessing with 64 mel bins for a model reading 32")


def test_require_finite_names_the_clips() -> None:
    ok = {"audio": np.zeros((3, 2)), "video": np.ones((3, 2))}
    require_finite(ok, ["x", "y", "z"])
    bad = {"audio": np.array([[0.0, 1.0], [np.nan, 0.0], [0.0, 0.0]]), "video": np.array([[0.0, np.inf], [0, 0], [0, 0]])}
    with pytest.raises(NonFiniteScores) as info:
        require_finite(bad, ["x", "y", "z"])
    assert str(info.value) == ("non-finite scores (audio, video) for 2 of 3 clip(s): x, y; NaN or Inf in their inputs "
                               "or in the weights, nothing counted")


def test_nonfinite_tensors() -> None:
    named = [("a", torch.zeros(2)), ("b", torch.tensor([1.0, float("nan")])), ("c", torch.tensor([1, 2])),
             ("d", torch.tensor([float("-inf")]))]
    assert nonfinite_tensors(named) == ["b", "d"]
    assert nonfinite_tensors([]) == []


def test_trim_metrics(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.9}, {"step": 2, "val/a/top1": 0.5}, {"step": 3, "loss": 1}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo')  # a torn last line
    assert trim_metrics(path, 2) == 2
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows[:3]
    assert trim_metrics(path, 2) == 0 and trim_metrics(tmp_path / "none.jsonl", 0) == 0


def test_record_invocation_keeps_every_invocation(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"command": ["zorro", "finetune"], "started": "t0"}))  # before the list existed
    record_invocation(path, {"command": ["zorro", "finetune", "--resume", "auto"], "started": "t1"})
    out = record_invocation(path, {"command": ["zorro", "x"], "started": "t2"})
    assert json.loads(path.read_text()) == out
    assert [i["started"] for i in out["invocations"]] == ["t0", "t1", "t2"] and out["started"] == "t2"


def test_clean_stale_and_pointer_target(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    step = root / "step_00000003"
    step.mkdir(parents=True)
    (step / "training_state.pt").write_bytes(b"")
    (step / "state.json").write_text('{"step": 3}')
    for name in (".step_00000004.tmp-x1", ".last.old-12"):
        (root / name).mkdir()
    (root / ".best.tmp-host-1").symlink_to("step_00000003")
    (tmp_path / ".recipe.yaml.tmp-host-1").write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    removed = clean_stale(tmp_path)
    assert sorted(p.name for p in removed) == [".best.tmp-host-1", ".last.old-12", ".recipe.yaml.tmp-host-1",
                                               ".step_00000004.tmp-x1"]
    assert sorted(p.name for p in root.iterdir()) == ["step_00000003"] and (tmp_path / "notes.txt").is_file()
    (root / "last").symlink_to("step_00000003")
    assert pointer_target(root / "last") == step
    (root / "best").mkdir()  # a cp -rL copy of step_00000003
    (root / "best" / "training_state.pt").write_bytes(b"")
    (root / "best" / "state.json").write_text('{"step": 3}')
    assert pointer_target(root / "best") == step
    (root / "gone").symlink_to("step_00000009")
    assert pointer_target(root / "gone") is None and pointer_target(root / "absent") is None

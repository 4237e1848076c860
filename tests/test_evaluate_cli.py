"""`zorro evaluate` / `zorro export` through the CLI: flags, errors, and sharded evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.commands.evaluate import plan_inputs


@pytest.fixture(scope="module")
def tiny_run(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zorro_cli.commands import finetune
    from zorro_cli.recipes import load_recipe

    out = tmp_path_factory.mktemp("eval") / "run"
    finetune.run(recipe=load_recipe("tiny", ["train.max_steps=4", "data.val_holdout=0"]), data=tiny_cache, out=out)
    return out


@pytest.mark.parametrize(("masking", "modality", "missing", "reads", "heads"), [
    ("zorro", "all", None, ("audio", "video"), None),
    ("zorro", "audio", None, ("audio",), ("audio",)),  # the unimodal path: no video read
    ("input_fusion", "audio", None, ("audio", "video"), ("audio",)),  # no unimodal stream to use
    ("zorro", "global", None, ("audio", "video"), ("global",)),
    ("zorro", "all", "video", ("audio",), None),
    ("input_fusion", "global", "audio", ("video",), ("global",)),
])
def test_plan_inputs(masking, modality, missing, reads, heads) -> None:
    assert plan_inputs(masking, modality, missing) == (reads, heads)


def test_evaluate_json_dump_and_errors(tiny_run: Path, tiny_cache: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(tiny_run), "--data", str(tiny_cache), "--json",
                              str(tmp_path / "r.json"), "--dump", str(tmp_path / "p.npz"), "--clips", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "r.json").read_text())
    assert set(out["heads"]) == {"audio", "video", "fusion", "global"} and out["views"] == 6
    assert set(out["heads"]["audio"]) == {"top1", "mean_class_acc"} and out["num_clips"] > 0  # 4 classes: no top5
    assert out["checkpoint_used"] == str(tiny_run / "checkpoints" / "last")  # no validation: no best
    assert "evaluating " in res.stderr and "checkpoints/last" in res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == out
    for args, msg in [
        (["--modality", "smell"], "'smell' is not one of 'all', 'audio', 'video', 'fusion', 'global'"),
        (["--missing", "audio", "--modality", "audio"], "cannot be evaluated with --missing audio"),
        (["--split", "nope"], "--split nope: the cache at"),
        (["--split", "val"], "no such split (it has test, train)"),
    ]:
        res = runner.invoke(app, ["evaluate", "--checkpoint", str(tiny_run), "--data", str(tiny_cache), *args])
        assert res.exit_code == 2 and res.stderr.count("\n") == 1 and msg in res.stderr, (args, res.output)
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path), "--data", str(tiny_cache)])
    assert res.exit_code == 2 and "no model.safetensors" in res.stderr


def test_export_cli_round_trip(tiny_run: Path, tmp_path: Path) -> None:
    from zorro_cli.model import load_pretrained

    runner = CliRunner()
    res = runner.invoke(app, ["export", "--checkpoint", str(tiny_run), "--format", "safetensors", "--out",
                              str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    model = load_pretrained(tmp_path / "x")
    cfg = json.loads((tmp_path / "x" / "config.json").read_text())
    assert model.config.num_classes == len(cfg["labels"]) == 4
    res = runner.invoke(app, ["export", "--checkpoint", str(tiny_run), "--format", "tflite", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "'tflite' is not one of 'safetensors', 'onnx'" in res.stderr


@pytest.mark.slow
def test_sharded_evaluation_matches_one_process(tiny_run: Path, tiny_cache: Path, tmp_path: Path) -> None:
    args = ["evaluate", "--checkpoint", str(tiny_run), "--data", str(tiny_cache), "--batch-size", "3"]
    one = subprocess.run([sys.executable, "-m", "zorro_cli.cli", *args, "--json", str(tmp_path / "one.json")],
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(29900 + os.getpid() % 90), "-m", "zorro_cli.cli", *args, "--json",
                          str(tmp_path / "two.json")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert a["num_clips"] == b["num_clips"] and a["heads"].keys() == b["heads"].keys()
    for head, metrics in a["heads"].items():
        assert metrics == pytest.approx(b["heads"][head], abs=1e-6), head

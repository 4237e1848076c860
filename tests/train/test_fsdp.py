"""``train.strategy: fsdp`` (FSDP2 per transformer block) against ``ddp``, two CPU processes over gloo.

Covers: the same losses, validation metrics and weights as DDP; checkpoints in the single-process format
(full weights, the optimiser state numbered like ``optimizer.state_dict()``); ``--resume auto`` equal to
the uninterrupted run; a DDP checkpoint resumed under FSDP; ``zorro export`` / ``zorro evaluate`` from an
FSDP run folder; a learned (scalar) temperature; one process; a bad value in one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_cli import FAST, losses, torchrun, weights, zorro
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.evaluation.predict import _part

TINY = ["model.dim=48", "model.depth=2", "model.heads=2", "log.trackers=[]", "train.batch_size=4", *FAST]
STEPS = ["train.max_steps=6", "train.checkpoint_every=3", "train.keep_last=5", "train.eval_every=3",
         "data.val_holdout=0.2"]  # (after FAST's 0)


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def validation(run: Path) -> dict[int, dict[str, float]]:
    return {r["step"]: {k: v for k, v in r.items() if k.startswith("val/")} for r in rows(run)
            if any(k.startswith("val/") for k in r)}


def training_state(ckpt: Path) -> dict:
    return torch.load(ckpt / "training_state.pt", weights_only=True)["optimizer"]


@pytest.fixture(scope="module")
def runs(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 6-step fine-tune (validation and a checkpoint every 3 steps) as ddp and as fsdp, 2 processes."""
    out = tmp_path_factory.mktemp("fsdp")
    for strategy in ("ddp", "fsdp"):
        torchrun("finetune", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(out / strategy),
                 f"train.strategy={strategy}", *TINY, *STEPS)
    return {"ddp": out / "ddp", "fsdp": out / "fsdp"}


@pytest.mark.slow
def test_fsdp_trains_and_validates_like_ddp(runs: dict[str, Path]) -> None:
    for strategy, run in runs.items():
        info = json.loads((run / "run.json").read_text())
        assert info["world_size"] == 2 and info["strategy"] == strategy, info
    ddp, fsdp = losses(runs["ddp"]), losses(runs["fsdp"])
    assert len(fsdp) == 6 and fsdp == pytest.approx(ddp, abs=1e-5)
    # Tolerance: the same sums in another order (a reduce-scatter of gradient shards vs DDP's all-reduce).
    val_ddp, val_fsdp = validation(runs["ddp"]), validation(runs["fsdp"])
    assert sorted(val_fsdp) == sorted(val_ddp) == [3, 6] and val_fsdp[6]
    assert all(val_fsdp[s] == pytest.approx(val_ddp[s], abs=1e-6) for s in val_ddp)
    wd, wf = weights(runs["ddp"]), weights(runs["fsdp"])
    assert sorted(wf) == sorted(wd) and all(wf[k].shape == wd[k].shape for k in wd)  # full, unsharded tensors
    assert max(float((wd[k] - wf[k]).abs().max()) for k in wd) < 1e-5


@pytest.mark.slow
def test_fsdp_optimizer_state_is_saved_in_full_in_the_ddp_layout(runs: dict[str, Path]) -> None:
    od = training_state(runs["ddp"] / "checkpoints" / "last")
    of = training_state(runs["fsdp"] / "checkpoints" / "last")
    assert [g["params"] for g in of["param_groups"]] == [g["params"] for g in od["param_groups"]]
    assert sorted(of["state"]) == sorted(od["state"])
    for i, s in od["state"].items():
        assert s["exp_avg"].shape == of["state"][i]["exp_avg"].shape and float(s["step"]) == float(of["state"][i]["step"])
        torch.testing.assert_close(of["state"][i]["exp_avg_sq"], s["exp_avg_sq"], rtol=1e-4, atol=1e-10)
    assert len(list((runs["fsdp"] / "checkpoints" / "last").glob("rng_rank*.pt"))) == 2


def _cut_at(run: Path, copy: Path, step: int) -> None:
    """``copy``: ``run`` as a run killed after its checkpoint at ``step`` would have left it."""
    shutil.copytree(run, copy, symlinks=True)
    root = copy / "checkpoints"
    for later in root.glob("step_*"):
        if int(later.name.removeprefix("step_")) > step:
            shutil.rmtree(later)
    for link in ("last", "best"):
        if not (root / link).exists():  # (a dangling link: its checkpoint came later)
            (root / link).unlink(missing_ok=True)
    (root / "last").unlink(missing_ok=True)
    (root / "last").symlink_to(f"step_{step:08d}")


@pytest.mark.slow
def test_fsdp_resume_is_exact_then_export_and_evaluate(runs: dict[str, Path], tiny_cache: Path, tmp_path: Path) -> None:
    args = ["finetune", "--recipe", "tiny", "--data", str(tiny_cache), "train.strategy=fsdp",
            *TINY, *STEPS, "--resume", "auto"]
    cut = tmp_path / "cut"
    _cut_at(runs["fsdp"], cut, 3)
    torchrun(*args, "--out", str(cut))
    assert losses(cut) == losses(runs["fsdp"])  # exact: the same sums in the same order
    wa, wb = weights(runs["fsdp"]), weights(cut)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert validation(cut)[6] == validation(runs["fsdp"])[6]
    # A DDP checkpoint resumes under FSDP (one checkpoint format)
    mixed = tmp_path / "ddp_then_fsdp"
    _cut_at(runs["ddp"], mixed, 3)
    torchrun(*args, "--out", str(mixed))
    assert losses(mixed) == pytest.approx(losses(runs["ddp"]), abs=1e-5)
    # export and evaluate read an FSDP run folder as they read any other
    zorro("export", "--checkpoint", str(runs["fsdp"]), "--out", str(tmp_path / "x"))
    exported = load_file(str(tmp_path / "x" / "model.safetensors"))
    best = load_file(str(runs["fsdp"] / "checkpoints" / "best" / "model.safetensors"))
    assert sorted(exported) == sorted(best) and all(torch.equal(exported[k], best[k]) for k in best)
    res = zorro("evaluate", "--checkpoint", str(runs["fsdp"]), "--data", str(tiny_cache), "--json", "-")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["num_clips"] > 0 and 0.0 <= report["heads"]["global"]["top1"] <= 1.0


@pytest.mark.slow
def test_fsdp_pretraining_with_a_learned_temperature(tiny_cache: Path, tmp_path: Path) -> None:
    """The scalar ``log τ`` (which ``fully_shard`` refuses) stays whole, its gradient averaged as DDP's is."""
    common = ["pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "model.learn_temperature=true",
              "train.max_steps=3", *TINY]
    for strategy in ("ddp", "fsdp"):
        torchrun(*common, f"train.strategy={strategy}", "--out", str(tmp_path / strategy))
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(tmp_path / "ddp"), abs=1e-5)
    wd, wf = weights(tmp_path / "ddp"), weights(tmp_path / "fsdp")
    assert wf["projectors.log_temperature"].shape == ()
    assert float(wf["projectors.log_temperature"]) == pytest.approx(float(wd["projectors.log_temperature"]), abs=1e-6)
    assert float(wf["projectors.log_temperature"]) != pytest.approx(-2.5257, abs=1e-4)  # log 0.08: it learned


def test_fsdp_on_one_process_is_the_plain_run(tiny_cache: Path, tmp_path: Path) -> None:
    common = ["finetune", "--recipe", "tiny", "--data", str(tiny_cache), "train.max_steps=2", *TINY]
    zorro(*common, "train.strategy=fsdp", "--out", str(tmp_path / "fsdp"))
    zorro(*common, "--out", str(tmp_path / "plain"))
    assert json.loads((tmp_path / "fsdp" / "run.json").read_text())["strategy"] == "single"
    assert losses(tmp_path / "fsdp") == losses(tmp_path / "plain")


def test_bad_strategy_is_one_line() -> None:
    res = CliRunner().invoke(app, ["finetune", "--recipe", "tiny", "train.strategy=zero3"])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "train.strategy: expected one of 'ddp', 'fsdp', got 'zero3'" in lines[0]


def test_sharded_evaluation_gives_every_process_as_many_clips() -> None:
    """FSDP all-gathers weights in every forward: the shorter parts repeat their last clip (counted once)."""
    assert [_part(5, r, 2, even=False) for r in (0, 1)] == [[0, 2, 4], [1, 3]]
    assert [_part(5, r, 2, even=True) for r in (0, 1)] == [[0, 2, 4], [1, 3, 3]]
    assert [_part(1, r, 2, even=True) for r in (0, 1)] == [[0], [0]]
    assert _part(0, 1, 2, even=True) == []

"""`zorro pretrain` / `zorro finetune` through the real interfaces: CLI in-process and as subprocesses.

Covers: every bundled recipe's --print-config, --dry-run, 20 user mistakes answered in one line with
exit 2, pretrain -> finetune from it on real container files (the loss falls), exact resume after
SIGKILL, two processes (torchrun + gloo) equal to one process with the same global batch, and a
diverging run stopped with its last good checkpoint intact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.recipes import bundled_recipes

ZORRO = [sys.executable, "-m", "zorro_cli.cli"]
FAST = ["data.val_holdout=0", "log.every=1", "train.warmup_steps=2"]


def zorro(*args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([*ZORRO, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"zorro {' '.join(args)} -> {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def torchrun(*args: str, nproc: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    """``zorro ARGS`` in ``nproc`` CPU processes under torchrun (gloo; a free port: ``--standalone``).
    torchrun, not ``accelerate launch --cpu --num_processes 2``, which has been seen to start one process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), "-m", "zorro_cli.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"torchrun zorro {' '.join(args)} -> {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


@pytest.mark.parametrize("name", bundled_recipes())
@pytest.mark.parametrize("verb", ["pretrain", "finetune"])
def test_every_bundled_recipe_prints_its_config(name: str, verb: str) -> None:
    res = CliRunner().invoke(app, [verb, "--recipe", name, "--print-config"])
    assert res.exit_code == 0, res.output
    printed = yaml.safe_load(res.stdout)
    assert set(printed) == {"preprocess", "model", "data", "train", "eval", "log"}


def test_bare_file_name_resolves_to_the_bundled_recipe() -> None:
    res = CliRunner().invoke(app, ["pretrain", "--recipe", "audioset.yaml", "--print-config", "train.lr=3e-4"])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(res.stdout)
    assert cfg["model"]["preset"] == "zorro_vit_b16" and cfg["train"]["lr"] == 3e-4
    assert cfg["model"]["temperature"] == 0.08 and cfg["train"]["epochs"] == 50


@pytest.mark.parametrize("verb", ["pretrain", "finetune"])
def test_tiny_dry_run(tiny_cache: Path, verb: str) -> None:
    res = CliRunner().invoke(app, [verb, "--recipe", "tiny", "--data", str(tiny_cache), "--dry-run"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["dry_run"] and out["batch"]["audio"] == [8, 1, 32, 64] and out["batch"]["video"] == [8, 3, 4, 32, 32]
    assert out["loss"] > 0


def _mistakes(tmp: Path, cache: Path) -> list[tuple[list[str], str]]:
    (tmp / "syntax.yaml").write_text("model: {preset: [unclosed\n")
    (tmp / "list.yaml").write_text("- a\n- b\n")
    (tmp / "typo.yaml").write_text("model:\n  maskin: zorro\n")
    d = ["--data", str(cache), "--out", str(tmp / "run")]
    return [
        (["--recipe", "nope"], "recipe 'nope' not found"),
        (["--recipe", str(tmp / "syntax.yaml")], "cannot read YAML"),
        (["--recipe", str(tmp / "list.yaml")], "expected a mapping of sections"),
        (["--recipe", str(tmp / "typo.yaml")], "model.maskin: unknown key (did you mean 'masking'?)"),
        (["train.lr=fast"], "train.lr: expected float, got 'fast'"),
        (["train.batch_size=0"], "train.batch_size: expected >= 1, got 0"),
        (["train.lr"], "expected section.key=value"),
        (["=3"], "expected section.key=value"),
        (["trian.lr=1"], "trian: unknown key (did you mean 'train'?)"),
        (["model.masking=mbt"], "model.masking: expected one of 'zorro', 'independent', 'bottleneck', 'input_fusion'"),
        (["train.precision=fp8"], "train.precision: expected one of 'no', 'bf16', 'fp16'"),
        (["data.modalities=[audio, audio]"], "data.modalities: expected a non-empty list of distinct"),
        (["data.modalities=[smell]"], "data.modalities[0]: expected one of 'audio', 'video'"),
        (["model.preset=zorro_vit_b17"], "did you mean 'zorro_vit_b16'?"),
        (["train.betas=[0.9]"], "train.betas: expected 2 items, got 1"),
        (["train.head_weights={speech: 1}"], "train.head_weights: unknown heads ['speech']"),
        (["train.lr=[1"], "cannot read the value as YAML"),
        (["--data", str(tmp / "missing_cache"), "--out", str(tmp / "r")], "missing_cache"),
        ([], "--data is required"),
        ([*d, "--resume", str(tmp)], "not a checkpoint folder"),
        ([*d, "train.max_steps=-1"], "train.max_steps: expected >= 1, got -1"),
        ([*d, "data.train_split=val"], "data.train_split: no split 'val' in the cache at"),
        ([*d, "data.val_holdout=0", "data.val_split=[test, dev]"], "no split 'dev' in the cache at "),
    ]


def test_user_mistakes_get_one_line_and_exit_2(tmp_path: Path, tiny_cache: Path) -> None:
    cases = _mistakes(tmp_path, tiny_cache)
    assert len(cases) >= 15
    runner = CliRunner()
    for args, expected in cases:
        full = ["pretrain", "--recipe", "tiny", *args] if "--recipe" not in args else ["pretrain", *args]
        res = runner.invoke(app, full)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert res.exit_code == 2, (args, res.output, res.exception)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, res.stderr)
        assert expected in lines[0], (args, lines[0])
        assert "Traceback" not in res.output


def test_finetune_init_mistake_is_one_line(tmp_path: Path, tiny_cache: Path) -> None:
    proc = zorro("finetune", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(tmp_path / "r"),
                 "--init", str(tmp_path / "nothing.pt"), check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "--init" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_pretrain_then_finetune_on_real_containers(tmp_path: Path, tiny_cache: Path) -> None:
    pre = tmp_path / "pre"
    out = zorro("pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(pre),
                "train.max_steps=40", "train.lr=2e-3", *FAST)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["run_dir"] == str(pre) and summary["step"] == 40
    pl = losses(pre)
    assert sum(pl[-8:]) / 8 < sum(pl[:8]) / 8, pl  # the contrastive loss falls
    ft = tmp_path / "ft"
    zorro("finetune", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(ft), "--init", str(pre),
          "train.max_steps=60", *FAST)
    fl = losses(ft)
    assert sum(fl[-8:]) / 8 < 0.8 * sum(fl[:8]) / 8, fl
    run = json.loads((ft / "run.json").read_text())
    assert run["init_report"]["kind"] == "zorro" and run["init_report"]["loaded"] > 50
    assert any("projectors" in k for k in run["init_report"]["skipped"])  # pre-training's projectors dropped
    assert (ft / "recipe.yaml").is_file() and run["command"][1:3] == ["finetune", "--recipe"]


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(tmp_path: Path, tiny_cache: Path) -> None:
    n = 12
    common = ["finetune", "--recipe", "tiny", "--data", str(tiny_cache), f"train.max_steps={2 * n}",
              f"train.checkpoint_every={n}", "train.keep_last=5", *FAST]
    zorro(*common, "--out", str(tmp_path / "a"))
    b = tmp_path / "b"
    proc = subprocess.Popen([*ZORRO, *common, "--out", str(b)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = b / "checkpoints" / f"step_{n:08d}"
    deadline = time.time() + 300
    while not first.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert first.is_dir() and not (b / "checkpoints" / f"step_{2 * n:08d}").exists(), "killed too late"
    zorro(*common, "--out", str(b), "--resume", "auto")
    wa, wb = weights(tmp_path / "a"), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k  # bit-identical (CPU, fixed seed)
    assert losses(b)[-n:] == losses(tmp_path / "a")[-n:]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path, tiny_cache: Path) -> None:
    common = ["pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "train.max_steps=6", *FAST]
    torchrun(*common, "train.batch_size=4", "--out", str(tmp_path / "two"))
    zorro(*common, "train.batch_size=8", "--out", str(tmp_path / "one"))
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert {r["negatives"] for r in rows} == {7.0}  # 4 local clips + 4 from the other process, minus itself
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), abs=1e-5)
    # Tolerance: the two runs add the same numbers in another order (a gloo all-reduce of two half-batch
    # gradients vs one full-batch reduction; GEMMs of other shapes), ~1e-7 relative per step, which
    # AdamW's normalisation can enlarge for near-zero gradients over 6 steps.
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-4


def test_diverging_run_stops_with_last_good_checkpoint(tmp_path: Path, tiny_cache: Path) -> None:
    run = tmp_path / "nan"
    proc = zorro("finetune", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(run),
                 "train.max_steps=30", "train.checkpoint_every=1", "train.lr=1e30", "train.warmup_steps=0",
                 "train.grad_clip=0", "data.val_holdout=0", check=False)
    assert proc.returncode == 1, proc.stderr[-2000:]
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "non-finite loss" in err[0] and "Last good checkpoint" in err[0]
    last = (run / "checkpoints" / "last").resolve()
    assert last.is_dir() and str(last) in err[0]
    from zorro_cli.model import load_pretrained

    model = load_pretrained(last)  # intact and loadable
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


def test_gradient_accumulation_equals_the_larger_batch(tmp_path: Path, tiny_cache: Path) -> None:
    common = ["finetune", "--recipe", "tiny", "--data", str(tiny_cache), "train.max_steps=3", *FAST]
    zorro(*common, "train.batch_size=4", "train.accumulate=2", "--out", str(tmp_path / "acc"))
    zorro(*common, "train.batch_size=8", "--out", str(tmp_path / "big"))
    assert losses(tmp_path / "acc") == pytest.approx(losses(tmp_path / "big"), abs=1e-5)
    wa, wb = weights(tmp_path / "acc"), weights(tmp_path / "big")
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-4


def test_bf16_autocast_on_cpu(tmp_path: Path, tiny_cache: Path) -> None:
    proc = zorro("pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(tmp_path / "bf16"),
                 "train.max_steps=3", "train.precision=bf16", *FAST)
    assert all(v == v and v > 0 for v in losses(tmp_path / "bf16"))  # finite, positive
    # 8 clips on one process: 7 negatives per clip, and the run says so once
    said = " ".join(proc.stderr.split())  # (the console may wrap the line)
    assert said.count("warning: 7 contrastive negatives per clip (train.batch_size 8 x 1 process(es) - 1)") == 1


@pytest.mark.slow
def test_unimodal_run_initialises_a_multimodal_finetune(tmp_path: Path, tiny_cache: Path) -> None:
    audio = tmp_path / "audio_only"
    out = zorro("finetune", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(audio),
                "data.modalities=[audio]", "train.max_steps=10", *FAST)
    assert json.loads(out.stdout.strip().splitlines()[-1])["step"] == 10
    assert set(k.split("/")[1] for k in json.loads((audio / "metrics.jsonl").read_text().splitlines()[0])
               if k.startswith("loss/")) == {"audio"}  # only the audio head answers audio-only data
    both = tmp_path / "both"
    zorro("finetune", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(both), "--init", str(audio),
          "train.max_steps=4", *FAST)
    report = json.loads((both / "run.json").read_text())["init_report"]
    assert report["kind"] == "zorro" and report["skipped"] == [] and report["fresh"] == 0


def test_tensorboard_events_carry_the_logged_metrics(tmp_path: Path, tiny_cache: Path) -> None:
    """``log.trackers: [tensorboard]``: the run's ``tb/`` events hold the same scalars, at the same steps, as
    ``metrics.jsonl`` (tensorboard comes with the ``test`` extra)."""
    pytest.importorskip("tensorboard", reason="tensorboard is installed by the test extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "tb-run"
    zorro("pretrain", "--recipe", "tiny", "--data", str(tiny_cache), "--out", str(run), "train.max_steps=6",
          "log.trackers=[tensorboard]", *FAST)
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = {(k, r["step"]): v for r in rows for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
    assert {"loss", "lr"} <= set(events.Tags()["scalars"])
    got = {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
    assert set(got) == set(logged)
    assert all(abs(got[k] - logged[k]) <= 1e-6 * max(1.0, abs(logged[k])) for k in logged)


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_plain_checkpoints(tmp_path: Path, tiny_cache: Path) -> None:
    """``train.compile=true`` (torch.compile through Accelerate): the same losses and weights as the eager
    run, and checkpoints under the model's own parameter names (loadable without compiling)."""
    args = ["--recipe", "tiny", "--data", str(tiny_cache), "train.max_steps=4", *FAST]
    zorro("pretrain", *args, "--out", str(tmp_path / "eager"))
    zorro("pretrain", *args, "--out", str(tmp_path / "compiled"), "train.compile=true")
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), rel=1e-4)
    eager, compiled = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    assert sorted(compiled) == sorted(eager)
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-3, atol=1e-4)  # (Adam amplifies ~1e-7 grads)


def test_mixup_is_applied_in_supervised_training(tmp_path: Path, tiny_cache: Path) -> None:
    """``data.augment.mixup_alpha`` mixes inputs and soft targets (it used to be accepted and ignored)."""
    common = ["finetune", "--recipe", "tiny", "--data", str(tiny_cache), "train.max_steps=2", *FAST]
    zorro(*common, "--out", str(tmp_path / "plain"))
    zorro(*common, "data.augment.mixup_alpha=0.4", "--out", str(tmp_path / "mix"))
    plain, mixed = losses(tmp_path / "plain"), losses(tmp_path / "mix")
    assert all(v == v for v in mixed) and mixed[0] != pytest.approx(plain[0], abs=1e-4)

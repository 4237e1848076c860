"""Issue 12, run folders / checkpoints / evaluation: each case a row of what was run, the exit code, the
one line on stderr, and that nothing was lost. Every verb runs through the real CLI (in-process, the
tiny recipe, a few steps on the synthetic cache); real HDF5 caches, real checkpoint files.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.lockfile import hold_lock

FAST = ["data.val_split=null", "data.val_holdout=0", "log.every=1", "train.warmup_steps=2", "train.keep_last=2"]


def zorro(*args: str) -> tuple[int, list[str], str]:
    """Run the CLI in-process: (exit code, the ``error:`` lines of stderr, all of stderr)."""
    res = CliRunner().invoke(app, [str(a) for a in args])
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    return res.exit_code, errors, res.stderr


def finetune(cache: Path, out: Path, *extra: str) -> tuple[int, list[str], str]:
    return zorro("finetune", "--recipe", "tiny", "--data", cache, "--out", out, *FAST, *extra)


def refused(code: int, errors: list[str], stderr: str, expect_code: int, *phrases: str) -> str:
    """Assert one ``error:`` line holding every phrase, with that exit code; return the line."""
    assert code == expect_code, stderr
    assert len(errors) == 1, stderr
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])
    return errors[0]


def steps(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_"))


def logged_steps(run: Path) -> list[int]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if "loss" in r]


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file and link under ``run/checkpoints``, to show nothing changed."""
    root = run / "checkpoints"
    return {str(p.relative_to(root)): str(p.readlink()).encode() if p.is_symlink() else p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def finite(ckpt: Path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in load_file(str(ckpt / "model.safetensors")).values())


@pytest.fixture(scope="module")
def base_run(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-step fine-tune, checkpoints at steps 2 and 4; tests work on copies of it."""
    out = tmp_path_factory.mktemp("runs") / "base"
    code, _, err = finetune(tiny_cache, out, "train.max_steps=4", "train.checkpoint_every=2")
    assert code == 0, err
    return out


@pytest.fixture
def run(base_run: Path, tmp_path: Path) -> Path:
    """A private copy of ``base_run`` (links kept as links)."""
    dst = tmp_path / "run"
    shutil.copytree(base_run, dst, symlinks=True)
    return dst


def _small_cache(synth_dir: Path, out: Path, rows: list[tuple[str, str, str]], overrides: list[str],
                 labels: list[str] | None = None) -> Path:
    """Preprocess a few of the synthetic clips (``(path, label, split)``) with the tiny recipe."""
    from zorro_cli.data.build import Job, preprocess
    from zorro_cli.recipes import load_recipe

    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    manifest.write_text("path,label,split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows))
    labels_file = None
    if labels is not None:
        labels_file = out / "labels.txt"
        labels_file.write_text("".join(f"{name}\n" for name in labels))
    cfg = load_recipe("tiny", ["preprocess.shard_size=8", *overrides]).preprocess
    preprocess(cfg, Job((manifest,), "generic", synth_dir, out / "cache", workers=0, labels=labels_file, plain=True))
    return out / "cache"


def _clips(c: int, i: int) -> str:
    return f"class{c}/class{c}_{i:03d}.{('mp4', 'mkv', 'avi', 'webm')[(c * 6 + i) % 4]}"


@pytest.fixture(scope="module")
def multilabel_cache(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Multi-label, labels listed in reverse order, 2 frames per second (the tiny run's cache has 4)."""
    rows = [(_clips(c, i), f"class{c};class{(c + 1) % 4}" if i == 0 else f"class{c}", "train" if i < 2 else "test")
            for c in range(4) for i in range(3)]
    return _small_cache(synth_dir, tmp_path_factory.mktemp("ml"), rows, ["preprocess.fps=2"],
                        labels=[f"class{c}" for c in (3, 2, 1, 0)])


# -- case 1 -------------------------------------------------------------------------------------------------

def test_case01_run_folder_is_never_silently_reused(run: Path, tiny_cache: Path, tmp_path: Path) -> None:
    before = snapshot(run)
    line = refused(*finetune(tiny_cache, run, "train.max_steps=4"), 2, "--resume auto", "fresh folder")
    assert "step_00000004" in line and snapshot(run) == before  # nothing written, nothing pruned
    proc = subprocess.run([sys.executable, "-m", "zorro_cli.cli", "pretrain", "--recipe", "tiny", "--data",
                           str(tiny_cache), "--out", str(run)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == line and proc.stdout == "", proc.stderr
    # a run killed after logging step 4 but before its checkpoint: `last` names step 2
    shutil.rmtree(run / "checkpoints" / "step_00000004")
    (run / "checkpoints" / "last").unlink()
    (run / "checkpoints" / "last").symlink_to("step_00000002")
    code, _, err = finetune(tiny_cache, run, "train.max_steps=6", "train.checkpoint_every=2", "--resume", "auto")
    assert code == 0, err
    assert logged_steps(run) == [1, 2, 3, 4, 5, 6]  # rows 3 and 4 of the killed run dropped, none twice
    assert steps(run) == ["step_00000004", "step_00000006"]
    assert (run / "checkpoints" / "last").resolve().name == "step_00000006"
    record = json.loads((run / "run.json").read_text())
    assert [i["start_step"] for i in record["invocations"]] == [0, 2] and record["start_step"] == 2
    # `last` dangling: --resume auto says so instead of restarting
    (run / "checkpoints" / "last").unlink()
    (run / "checkpoints" / "last").symlink_to("step_00000099")
    before = snapshot(run)
    refused(*finetune(tiny_cache, run, "train.max_steps=8", "--resume", "auto"), 2,
            "does not name a checkpoint", "a dangling link", "step_00000006")
    assert snapshot(run) == before


def test_case01_resume_never_mixes_two_histories(run: Path, base_run: Path, tiny_cache: Path) -> None:
    before = snapshot(run)
    older = run / "checkpoints" / "step_00000002"
    refused(*finetune(tiny_cache, run, "train.max_steps=6", "--resume", older), 2,
            "holds later checkpoints (step_00000004)", "--resume auto", "fresh folder")
    other = base_run / "checkpoints" / "step_00000004"
    refused(*finetune(tiny_cache, run, "train.max_steps=6", "--resume", other), 2,
            "holds another run's checkpoints", "fresh folder")
    assert snapshot(run) == before


def test_case01_pruning_goes_by_step_among_the_runs_own_checkpoints(tmp_path: Path) -> None:
    from zorro_cli.model import build_model
    from zorro_cli.train.checkpoint import Position, rng_state, save_checkpoint

    model = build_model("zorro_vit_tiny", num_classes=2)
    root = tmp_path / "checkpoints"
    opt = torch.optim.AdamW(model.parameters()).state_dict()
    for step in (20, 30, 5, 6, 7):  # 20 and 30: a later history this run resumed before (left alone)
        save_checkpoint(root, model, model.state_dict(), opt, Position(step=step), {}, [rng_state()], keep_last=2,
                        is_best=step == 5)
    assert [p.name for p in sorted(root.glob("step_*"))] == \
        ["step_00000005", "step_00000006", "step_00000007", "step_00000020", "step_00000030"]
    assert (root / "last").resolve().name == "step_00000007" and (root / "best").resolve().name == "step_00000005"


# -- case 2 -------------------------------------------------------------------------------------------------

def test_case02_run_folder_copied_with_links_followed(base_run: Path, run: Path, tiny_cache: Path,
                                                      tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-rL", str(base_run), str(copy)], check=True)
    assert (copy / "checkpoints" / "last").is_dir() and not (copy / "checkpoints" / "last").is_symlink()
    more = ["train.max_steps=6", "train.checkpoint_every=2", "--resume", "auto"]
    code, _, err = finetune(tiny_cache, copy, *more)
    assert code == 0, err
    assert "resumed from" in err and "at step 4" in err
    last = copy / "checkpoints" / "last"
    assert last.is_symlink() and last.resolve().name == "step_00000006" and logged_steps(copy) == [1, 2, 3, 4, 5, 6]
    code, _, err = finetune(tiny_cache, run, *more)  # the original (links kept) resumed the same way
    assert code == 0, err
    ours, theirs = (load_file(str(r / "checkpoints" / "last" / "model.safetensors")) for r in (copy, run))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)  # the copy resumed exactly
    # a `last` that is a folder but no checkpoint: one line, not a restart
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-rL", str(base_run), str(broken)], check=True)
    shutil.rmtree(broken / "checkpoints" / "last")
    (broken / "checkpoints" / "last").mkdir()
    refused(*finetune(tiny_cache, broken, "train.max_steps=6", "--resume", "auto"), 2,
            "does not name a checkpoint (no training_state.pt there)", "step_00000004: pass it to --resume")


# -- case 3 -------------------------------------------------------------------------------------------------

def test_case03_checkpoints_hold_only_finite_weights(tiny_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "diverge"
    line = refused(*finetune(tiny_cache, out, "train.max_steps=30", "train.checkpoint_every=1", "train.lr=1e2",
                             "train.grad_clip=0", "train.warmup_steps=0"), 1, "Last good checkpoint")
    named = line.rsplit("Last good checkpoint: ", 1)[1].strip()
    saved = [out / "checkpoints" / s for s in steps(out)]
    assert all(finite(c) for c in saved), "a checkpoint holds NaN/Inf"
    if named != "none":
        assert finite(Path(named)) and (out / "checkpoints" / "last").resolve() == Path(named).resolve()


# -- case 4 -------------------------------------------------------------------------------------------------

def _poison(monkeypatch: pytest.MonkeyPatch, clip_id: str) -> None:
    """The log-mel of one clip reads as NaN (as a damaged cache would give it)."""
    from zorro_cli.data.cache import Cache

    real = Cache.logmel

    def logmel(self: Cache, clip):  # type: ignore[no-untyped-def]
        x = real(self, clip)
        return x * float("nan") if self.row(clip).clip_id == clip_id else x

    monkeypatch.setattr(Cache, "logmel", logmel)


def test_case04_nonfinite_scores_are_refused(base_run: Path, tiny_cache: Path, multilabel_cache: Path,
                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zorro_cli.data.cache import open_cache

    victim = open_cache(tiny_cache).clip_ids("test")[1]
    _poison(monkeypatch, victim)
    refused(*zorro("evaluate", "--checkpoint", base_run, "--data", tiny_cache), 1,
            "non-finite scores", "1 of", victim)
    # validation during training goes through the same code
    refused(*zorro("finetune", "--recipe", "tiny", "--data", tiny_cache, "--out", tmp_path / "val",
                   "train.max_steps=2", "log.every=1", "data.val_split=test", "data.val_holdout=0"), 1,
            "non-finite scores", victim)
    # multi-label (was a scikit-learn traceback)
    monkeypatch.undo()
    ml_run = tmp_path / "ml"
    code, _, err = finetune(multilabel_cache, ml_run, "train.max_steps=2", "train.batch_size=4")
    assert code == 0, err
    ml_victim = open_cache(multilabel_cache).clip_ids("test")[0]
    _poison(monkeypatch, ml_victim)
    refused(*zorro("evaluate", "--checkpoint", ml_run, "--data", multilabel_cache, "--crops", "1"), 1,
            "non-finite scores", ml_victim)


# -- case 5 and the weights of case 15 ---------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_case05_damaged_weights_are_named_in_one_line(run: Path, tiny_cache: Path, tmp_path: Path,
                                                       damage: str) -> None:
    weights = (run / "checkpoints" / "step_00000004" / "model.safetensors")
    data = bytearray(weights.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[-100] ^= 0x01  # inside the last tensor: the file still parses
    weights.write_bytes(bytes(data))
    ckpt = run / "checkpoints" / "step_00000004"
    expect = "truncated" if damage == "truncated" else "sha256"
    refused(*zorro("export", "--checkpoint", ckpt, "--format", "safetensors", "--out", tmp_path / "x"), 2,
            str(weights), expect)
    assert not (tmp_path / "x" / "model.safetensors").exists()  # nothing damaged exported
    refused(*zorro("export", "--checkpoint", ckpt, "--format", "onnx", "--out", tmp_path / "o"), 2, expect)
    refused(*zorro("evaluate", "--checkpoint", ckpt, "--data", tiny_cache), 2, expect)
    refused(*finetune(tiny_cache, run, "train.max_steps=6", "--resume", "auto"), 2, expect)
    refused(*finetune(tiny_cache, tmp_path / "warm", "train.max_steps=2", "--init", ckpt), 2, expect)
    # a bare weights file (no config.json to hold a checksum) that does not parse: still one line
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(weights.read_bytes()[:1000])
    refused(*finetune(tiny_cache, tmp_path / "warm2", "train.max_steps=2", "--init", bare), 2, str(bare))


# -- case 6 -------------------------------------------------------------------------------------------------

def test_case06_cache_made_differently_from_the_checkpoint(base_run: Path, multilabel_cache: Path) -> None:
    refused(*zorro("evaluate", "--checkpoint", base_run, "--data", multilabel_cache), 2,
            "made differently", "another order", "label 0 is 'class3', checkpoint: 'class0'",
            "fps 2.0 (checkpoint: 4.0)", "multi-label")


# -- case 10 ------------------------------------------------------------------------------------------------

def test_case10_unlabelled_training_clip_in_a_single_label_finetune(synth_dir: Path, tmp_path: Path) -> None:
    rows = [(_clips(c, i), f"class{c}", "train") for c in range(2) for i in range(2)]
    rows[1] = (rows[1][0], "", "train")
    cache = _small_cache(synth_dir, tmp_path / "unl", rows, [])
    from zorro_cli.data.cache import open_cache

    unlabelled = open_cache(cache).clip_ids("train")[1]
    refused(*finetune(cache, tmp_path / "r", "train.max_steps=2", "train.batch_size=2"), 2,
            "1 of 4 clips have no label", unlabelled, "split 'train'")
    assert not (tmp_path / "r" / "checkpoints").exists()


# -- case 12 ------------------------------------------------------------------------------------------------

def test_case12_impossible_batch_and_crop_counts(base_run: Path, tiny_cache: Path, tmp_path: Path) -> None:
    refused(*finetune(tiny_cache, tmp_path / "big", "train.batch_size=64"), 2,
            "global batch of 64", "16 training clips", "train.batch_size")
    refused(*zorro("evaluate", "--checkpoint", base_run, "--data", tiny_cache, "--crops", "2"), 2,
            "--crops: expected 1 or 3")
    (tmp_path / "file").write_text("not a folder")
    refused(*zorro("evaluate", "--checkpoint", base_run, "--data", tiny_cache, "--dump", tmp_path / "file" / "p.npz"),
            1, "cannot write the results")


# -- case 13 (training) -------------------------------------------------------------------------------------

def test_case13_second_training_in_one_run_folder(run: Path, tiny_cache: Path) -> None:
    before = snapshot(run)
    with hold_lock(run, what="run folder"):  # as a training running there holds it
        refused(*finetune(tiny_cache, run, "train.max_steps=6", "--resume", "auto"), 2, "run folder is in use")
    assert snapshot(run) == before
    code, _, err = finetune(tiny_cache, run, "train.max_steps=6", "--resume", "auto")  # free again afterwards
    assert code == 0, err


# -- case 14 (checkpoint) -----------------------------------------------------------------------------------

def test_case14_disk_full_during_a_checkpoint(tiny_cache: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from zorro_cli.train import checkpoint

    real = checkpoint.write_model_files

    def full_disk(model, folder: Path, extra=None, state=None):  # type: ignore[no-untyped-def]
        real(model, folder, extra, state)
        if "step_00000004" in folder.name:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "write_model_files", full_disk)
    out = tmp_path / "full"
    refused(*finetune(tiny_cache, out, "train.max_steps=4", "train.checkpoint_every=2"), 1,
            "step_00000004", "No space left on device", "earlier checkpoints are intact (last: step_00000002)")
    assert steps(out) == ["step_00000002"] and (out / "checkpoints" / "last").resolve().name == "step_00000002"
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no half-written folder
    assert finite(out / "checkpoints" / "step_00000002")
    monkeypatch.undo()
    code, _, err = finetune(tiny_cache, out, "train.max_steps=4", "train.checkpoint_every=2", "--resume", "auto")
    assert code == 0 and steps(out) == ["step_00000002", "step_00000004"], err
    # the disk fills up while the metrics are written: one line too, the checkpoints as they were
    from zorro_cli.train.reporting import RunLog

    def full_metrics(self: RunLog, record: dict) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.out / "metrics.jsonl"))

    monkeypatch.setattr(RunLog, "_write", full_metrics)
    before = snapshot(out)
    refused(*finetune(tiny_cache, out, "train.max_steps=6", "--resume", "auto"), 1,
            "metrics.jsonl: No space left on device", "Last good checkpoint", "step_00000004")
    assert snapshot(out) == before


# -- case 16 (checkpoint) -----------------------------------------------------------------------------------

def test_case16_half_written_checkpoints_removed_at_the_next_start(run: Path, tiny_cache: Path) -> None:
    root = run / "checkpoints"
    half = root / ".step_00000006.tmp-abc123"  # as atomic_folder leaves it when killed
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0" * 10)
    (root / ".last.tmp-host-4242").symlink_to("step_00000006")
    (run / ".run.json.tmp-host-4242").write_text("{")
    code, _, err = finetune(tiny_cache, run, "train.max_steps=6", "train.checkpoint_every=2", "--resume", "auto")
    assert code == 0, err
    assert not [p.name for p in [*root.iterdir(), *run.iterdir()] if ".tmp-" in p.name]
    assert steps(run) == ["step_00000004", "step_00000006"]


# -- --resume with a recipe whose model differs (README: "--resume stops at loading") ----------------------

def test_resume_with_another_model_is_one_line(run: Path, tiny_cache: Path) -> None:
    before = snapshot(run)
    refused(*finetune(tiny_cache, run, "train.max_steps=6", "model.fusion_tokens=2", "--resume", "auto"), 2,
            "step_00000004: does not fit this model and recipe", "resume with the recipe it was trained with")
    assert snapshot(run) == before


def test_case14_disk_full_during_an_export(base_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil as sh

    def full_disk(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sh, "copyfile", full_disk)
    refused(*zorro("export", "--checkpoint", base_run, "--format", "safetensors", "--out", tmp_path / "x"), 1,
            "No space left on device", str(tmp_path / "x"))
    assert not [p.name for p in (tmp_path / "x").iterdir()]  # no half-written file left

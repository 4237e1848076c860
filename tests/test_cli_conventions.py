"""CLI conventions: commands in pipeline order, shell completion, choices for fixed values, no ``<bool>``
metavars on flags, the default recipe in ``--help``, one-line flag errors with the override a recipe key
needs (``--lr 1e-3`` -> ``train.lr=1e-3``), and folders made 0755 (umask respected)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from zorro_cli.atomic import atomic_folder
from zorro_cli.cli import app
from zorro_cli.clikit import override_hint, recipe_keys

PIPELINE = ["preprocess", "pretrain", "finetune", "evaluate", "export", "demo", "recipes", "models"]


def help_text(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    return res.stdout


def test_commands_in_pipeline_order_and_completion_on() -> None:
    text = help_text()
    positions = [text.index(f"│ {verb} ") for verb in PIPELINE]
    assert positions == sorted(positions)
    assert "--install-completion" in text and "--show-completion" in text


def test_flags_have_no_bool_metavar_and_choices_are_listed() -> None:
    for verb in PIPELINE:
        assert "<bool>" not in help_text(verb), verb
    assert "<generic|audioset|vggsound|kinetics|esc50>" in help_text("preprocess")
    assert "<safetensors|onnx>" in help_text("export") and "<all|audio|video>" in help_text("export")
    assert "<all|audio|video|fusion|global>" in help_text("evaluate")


def test_help_says_the_default_recipe() -> None:
    for verb in ("pretrain", "finetune"):
        assert "(default: tiny, a 0.3" in help_text(verb)


def test_override_hint_literal() -> None:
    keys = recipe_keys()
    assert {"train.lr", "data.augment.mixup_alpha", "log.trackers"} <= set(keys)
    assert override_hint("--lr", "1e-3", keys) == "train.lr=1e-3"
    assert override_hint("--max-steps=5", None, keys) == "train.max_steps=5"
    assert override_hint("--mixup_alpha", None, keys) == "data.augment.mixup_alpha=VALUE"
    assert override_hint("--frames", "8", keys) == "data.frames=8"
    assert override_hint("--nonsense", "1", keys) is None


def test_flag_mistakes_are_one_line_exit_2() -> None:
    runner = CliRunner()
    for args, expected in [
        (["pretrain", "--lr", "1e-3"], "error: no such option --lr; recipe keys are set as overrides after the "
                                       "flags: write train.lr=1e-3 (see `zorro pretrain --help`)"),
        (["finetune", "--epochs=3"], "write train.epochs=3"),
        (["export", "--checkpoint", "x", "--out", "y", "--format", "tflite"], "'tflite' is not one of"),
        (["evaluate", "--data", "x"], "Missing option '--checkpoint'"),
    ]:
        res = runner.invoke(app, args)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and expected in lines[0], (args, res.stderr)
        assert res.stdout == ""


def test_atomic_folders_get_plain_modes(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_folder(tmp_path / "ckpt") as tmp:
            fd = os.open(tmp / "model.safetensors", os.O_CREAT | os.O_WRONLY, 0o600)  # as safetensors does
            os.close(fd)
            (tmp / "sub").mkdir(mode=0o700)
        assert stat.S_IMODE((tmp_path / "ckpt").stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "ckpt" / "sub").stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "ckpt" / "model.safetensors").stat().st_mode) == 0o644
        os.umask(0o077)
        with atomic_folder(tmp_path / "private"):
            pass
        assert stat.S_IMODE((tmp_path / "private").stat().st_mode) == 0o700  # the umask is respected
    finally:
        os.umask(old)

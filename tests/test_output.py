"""Output for scripts: every verb prints exactly one JSON line on stdout and nothing else (human text goes
to stderr); ``--json FILE`` gets the same result, ``--json -`` means stdout (never a file named ``-``);
``--dry-run`` prints its JSON once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zorro_cli.cli import app


def only_json_line(res) -> dict:
    """The result of a verb that printed exactly one line on stdout, a JSON object."""
    assert res.exit_code == 0, res.output
    assert res.stdout.count("\n") == 1 and res.stdout.endswith("\n"), res.stdout
    return json.loads(res.stdout)


def test_every_verb_prints_one_json_line(tmp_path: Path, synth_dir: Path, tiny_cache: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    cache = tmp_path / "cache"
    pre = only_json_line(runner.invoke(app, [
        "preprocess", "--manifest", str(synth_dir / "manifest.csv"), "--media-root", str(synth_dir),
        "--out", str(cache), "--recipe", "tiny", "--workers", "0", "--json", "-", "shard_size=8"]))
    assert pre["counts"]["cached"] == 24 and not (tmp_path / "-").exists()
    short = ["--recipe", "tiny", "--data", str(tiny_cache), "train.max_steps=2", "data.val_holdout=0",
             "log.trackers=[]"]
    run = only_json_line(runner.invoke(app, ["pretrain", *short, "--out", "pre", "--json", "pre.json"]))
    assert run["step"] == 2 and json.loads((tmp_path / "pre.json").read_text()) == run
    ft = only_json_line(runner.invoke(app, ["finetune", *short, "--out", "ft", "--init", "pre"]))
    assert ft["mode"] == "finetune"
    ev = only_json_line(runner.invoke(app, ["evaluate", "--checkpoint", "ft", "--data", str(tiny_cache),
                                            "--json", "ev.json"]))
    assert json.loads((tmp_path / "ev.json").read_text()) == ev and ev["checkpoint_used"].endswith("last")
    ex = only_json_line(runner.invoke(app, ["export", "--checkpoint", "ft", "--out", "export"]))
    assert ex["format"] == "safetensors"
    dry = only_json_line(runner.invoke(app, ["finetune", *short, "--dry-run"]))
    assert dry["dry_run"] is True  # once: json.loads of the whole stdout would fail on a second copy
    assert not (tmp_path / "-").exists()

"""Checkpoint folders: atomic writes, retention around ``best``, RNG round trip, resume resolution."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from zorro_cli.model import build_model, load_pretrained
from zorro_cli.train.checkpoint import (
    Position,
    ResumeError,
    load_rng,
    load_training_state,
    resolve_resume,
    rng_state,
    save_checkpoint,
    set_rng_state,
    step_dirs,
)


def _save(root, model, step, best=False, keep=2):
    opt = torch.optim.AdamW(model.parameters())
    return save_checkpoint(root, model, model.state_dict(), opt.state_dict(), Position(step=step, epoch=1),
                           {"labels": ["a"]}, [rng_state()], keep_last=keep, is_best=best)


def test_retention_keeps_last_n_and_best(tmp_path) -> None:
    model = build_model("zorro_vit_tiny", num_classes=2)
    root = tmp_path / "checkpoints"
    _save(root, model, 10, best=True)
    for s in (20, 30, 40):
        _save(root, model, s)
    assert [p.name for p in step_dirs(root)] == ["step_00000010", "step_00000030", "step_00000040"]
    assert (root / "last").resolve().name == "step_00000040"
    assert (root / "best").resolve().name == "step_00000010"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    opt_state, pos = load_training_state(root / "last")
    assert pos == Position(step=40, epoch=1) and "state" in opt_state
    assert load_pretrained(tmp_path).config == model.config  # a run dir resolves to checkpoints/best
    assert resolve_resume(tmp_path, "auto") == (root / "step_00000040").resolve()
    assert resolve_resume(tmp_path / "fresh", "auto") is None
    with pytest.raises(ResumeError, match="not a checkpoint folder"):
        resolve_resume(tmp_path, str(tmp_path / "nowhere"))


def test_rng_round_trip(tmp_path) -> None:
    model = build_model("zorro_vit_tiny", num_classes=2)
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    ckpt = _save(tmp_path, model, 1)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    set_rng_state(load_rng(ckpt, 0))
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    assert load_rng(ckpt, 1) is None

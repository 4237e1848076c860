"""``zorro_cli.ranges`` (the range tables' one reader) and the evaluation memory check, against literal values."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from zorro_cli.data.inputs import ModelInputs
from zorro_cli.errors import UsageError
from zorro_cli.evaluation.budget import batch_bytes, check_flags, check_memory
from zorro_cli.ranges import FRACTION, Range, at_least, crops_problem, positive, range_problems

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("rng", "value", "ok"), [
    (positive(), 1e-9, True), (positive(), 0.0, False), (positive(), NAN, False), (positive(), INF, False),
    (at_least(0), 0, True), (at_least(0), -1, False), (at_least(0), NAN, False), (at_least(0), -INF, False),
    (FRACTION, 1.0, True), (FRACTION, 1.0001, False), (Range(0, 1, hi_open=True), 1.0, False),
    (at_least(1, 2048), 2048, True), (at_least(1, 2048), 100000, False), (at_least(0), True, False),
])
def test_range_holds(rng: Range, value: float, ok: bool) -> None:
    assert rng.holds(value) is ok


def test_range_text() -> None:
    assert [r.text() for r in (positive(), at_least(1), FRACTION, Range(0, 1, lo_open=True),
                               Range(0, 1, hi_open=True), at_least(1, optional=True), Range(), Range(hi=0.5))] == [
        "> 0", ">= 1", "in [0, 1]", "in (0, 1]", "in [0, 1)", ">= 1", "a finite number", "<= 0.5"]


@dataclass
class Section:
    lr: float = 1e-4
    seed: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    steps: int | None = None


TABLE = {"lr": positive(), "seed": at_least(0, 2**32 - 1), "betas": Range(0, 1, hi_open=True),
         "steps": at_least(1, optional=True)}


def test_range_problems() -> None:
    assert range_problems(Section(), TABLE) == []
    assert range_problems(Section(lr=NAN, seed=-1, betas=(0.9, 1.0), steps=0), TABLE) == [
        "lr: expected > 0, got nan", "seed: expected in [0, 4294967295], got -1",
        "betas: expected each in [0, 1), got [0.9, 1.0]", "steps: expected >= 1, got 0"]


def test_batch_bytes() -> None:
    inputs = ModelInputs(audio_frames=10, frames=2, image_size=4)
    # audio 8 x 10 + video 2 x 3 x 4 x 4 = 80 + 96 floats per view; 3 views x 5 clips x 4 bytes
    assert batch_bytes(inputs, 8, ("audio", "video"), 3, 5) == (80 + 96) * 3 * 5 * 4
    assert batch_bytes(inputs, 8, ("audio",), 3, 5) == 80 * 3 * 5 * 4


def test_check_memory_and_flags() -> None:
    check_memory(100, 200, "r")
    check_memory(100, None, "r")  # unknown: nothing to check against
    with pytest.raises(UsageError, match=r"^r: one batch of inputs needs 2.0 GiB, 1.0 GiB is free"):
        check_memory(2**30, 2**30, "r")
    check_flags(clips=64, batch_size=16)
    with pytest.raises(UsageError, match=r"^--clips: expected in \[1, 64\], got 0; --batch-size: expected in"):
        check_flags(clips=0, batch_size=0)


def test_eval_crops_are_one_or_three() -> None:
    from zorro_cli.recipes.sections import EvalSection

    assert EvalSection(crops=2).problems() == ["crops: expected 1 or 3 spatial crops, got 2"]
    assert EvalSection(crops=1).problems() == [] and EvalSection(crops=3).problems() == []
    assert len(EvalSection(crops=0).problems()) == 1  # the range table's own message, not both


def test_crops_rule() -> None:
    """One rule for ``eval.crops``, ``--crops`` and the dataset: the centre square or three squares."""
    assert crops_problem(1) is None and crops_problem(3) is None
    assert [crops_problem(c) for c in (0, 2, 4, True)] == [
        "expected 1 or 3 spatial crops, got 0", "expected 1 or 3 spatial crops, got 2",
        "expected 1 or 3 spatial crops, got 4", "expected 1 or 3 spatial crops, got True"]

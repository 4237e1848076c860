"""``data.val_holdout``: a fixed share of the train split held out for validation (the tiny recipe validates
on it, not on test)."""

from __future__ import annotations

from pathlib import Path

from zorro_cli.data.dataset import ClipDataset, holdout_mask
from zorro_cli.recipes import load_recipe


def test_holdout_mask_literal() -> None:
    assert holdout_mask(list("abcde"), 0.4).tolist() == [False, False, False, True, True]
    assert holdout_mask(list("edcba"), 0.4).tolist() == [True, True, False, False, False]  # same clips, any order
    assert holdout_mask(list("ab"), 0.01).tolist() == [True, False]  # at least one
    assert holdout_mask(list("abc"), 0.99).tolist() == [True, False, True]  # never all
    assert not holdout_mask(["x"], 0.5).any() and not holdout_mask(list("abc"), 0.0).any()


def test_held_out_and_training_clips_partition_the_train_split(tiny_cache: Path) -> None:
    train = ClipDataset(tiny_cache, "train", "eval", holdout=(0.25, False))
    held = ClipDataset(tiny_cache, "train", "eval", holdout=(0.25, True))
    everything = ClipDataset(tiny_cache, "train", "eval")
    ids = [r.clip_id for r in everything.rows]
    assert not {r.clip_id for r in train.rows} & {r.clip_id for r in held.rows}
    assert sorted(r.clip_id for r in [*train.rows, *held.rows]) == sorted(ids)
    assert len(held) == round(0.25 * len(ids))


def test_tiny_validates_on_held_out_training_clips_not_on_test() -> None:
    r = load_recipe("tiny")
    assert r.data.val_split is None and r.data.val_holdout == 0.2 and r.eval.split == "test"


def test_holdout_and_val_split_together_are_refused() -> None:
    import pytest

    from zorro_cli.recipes import RecipeError

    with pytest.raises(RecipeError, match=r"data\.val_holdout: validation is either a held-out share"):
        load_recipe("tiny", ["data.val_split=test"])
    with pytest.raises(RecipeError, match=r"data.val_holdout: expected in \[0, 1\), got 1.0"):
        load_recipe("tiny", ["data.val_holdout=1"])

"""Augmentation and view sampling: pure functions against small literal values."""

from __future__ import annotations

import pytest
import torch

from zorro_cli.data import augment as aug


def test_item_generator_is_a_pure_function_of_seed_epoch_index():
    draw = [aug.randint(0, 9, aug.item_generator(0, 0, 0)) for _ in range(2)]
    assert draw[0] == draw[1]
    g0, g1 = aug.item_generator(0, 0, 0), aug.item_generator(0, 1, 0)
    assert [aug.randint(0, 9, g0) for _ in range(5)] == [7, 6, 4, 0, 0]
    assert [aug.randint(0, 9, g1) for _ in range(5)] == [6, 5, 6, 3, 3]


def test_time_windows():
    assert aug.eval_centers(10.0, 6.4, 1) == [5.0]
    assert aug.eval_centers(10.0, 6.0, 3) == [3.0, 5.0, 7.0]
    assert aug.eval_centers(2.0, 6.4, 2) == [1.0, 1.0]  # clip shorter than the window: mid-clip
    assert aug.random_center(10.0, 6.4, aug.item_generator(0, 0, 0)) == pytest.approx(6.707724928855896)
    assert aug.window_start(5.0, 100.0, 640, 1001) == 180
    assert aug.window_start(0.1, 100.0, 640, 1001) == 0
    assert aug.window_start(9.9, 100.0, 640, 1001) == 361
    assert aug.window_start(1.0, 100.0, 640, 200) == 0  # shorter than the window
    assert aug.frame_indices(3, 4, 2, 8) == [3, 5, 7, 7]  # the last frame is held


def test_boxes():
    assert aug.random_resized_box(40, 53, (0.35, 1.0), (3 / 4, 4 / 3), aug.item_generator(0, 0, 0)) == (5, 6, 34, 38)
    assert aug.random_resized_box(40, 53, (1.0, 1.0), (1.0, 1.0), aug.item_generator(0, 0, 0)) == (0, 6, 40, 40)
    assert aug.eval_boxes(40, 71, 3) == [(0, 0, 40, 40), (0, 15, 40, 40), (0, 31, 40, 40)]  # left/centre/right
    assert aug.eval_boxes(71, 40, 3) == [(0, 0, 40, 40), (15, 0, 40, 40), (31, 0, 40, 40)]  # top/centre/bottom
    assert aug.eval_boxes(40, 71, 1) == [(0, 15, 40, 40)]


def test_crop_resize_and_normalize():
    frames = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    same = aug.crop_resize(frames, (1, 1, 2, 2), (2, 2))
    assert same.dtype == torch.float32 and same[0, 0].tolist() == [[5.0, 6.0], [9.0, 10.0]]
    assert aug.crop_resize(frames, (0, 0, 4, 4), (2, 2)).shape == (2, 3, 2, 2)
    grey = torch.full((1, 3, 1, 1), 255 * 0.485)
    out = aug.normalize_video(grey)  # [T,3,H,W] -> [3,T,H,W]
    assert out.shape == (3, 1, 1, 1) and out[0].item() == pytest.approx(0.0, abs=1e-5)


def test_spec_augment_and_jitter():
    mel = torch.arange(6 * 8, dtype=torch.float32).view(6, 8) + 1
    out = aug.spec_augment(mel, torch.Generator().manual_seed(3), 1, 2, 1, 3)
    assert out[2].tolist() == [0.0] * 8 and out[:, 3].tolist() == [0.0] * 6  # one row, one column masked
    assert int((out == 0).sum()) == 8 + 6 - 1 and torch.equal(mel, torch.arange(48.0).view(6, 8) + 1)
    col = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    assert aug.freq_shift(col, 1).flatten().tolist() == [1.0, 1.0, 2.0, 3.0]
    assert aug.freq_shift(col, -2).flatten().tolist() == [3.0, 4.0, 4.0, 4.0]
    assert aug.fit_length(torch.ones(2, 3), 5).tolist() == [[1, 1, 1, 0, 0]] * 2
    assert aug.fit_length(torch.ones(2, 6), 5).shape == (2, 5)


def test_mixup():
    batch = {"audio": torch.tensor([[1.0], [3.0]]), "label": torch.tensor([0, 1])}
    out = aug.mixup_batch(batch, 0.5, torch.Generator().manual_seed(0), 3)
    lam = float(out["mixup_lambda"])
    assert lam == pytest.approx(0.5254, abs=1e-4)
    assert out["audio"].flatten().tolist() == pytest.approx([lam + 3 * (1 - lam), 3 * lam + (1 - lam)])
    assert out["label"].flatten().tolist() == pytest.approx([lam, 1 - lam, 0.0, 1 - lam, lam, 0.0])
    assert aug.mixup_batch(batch, 0.0, torch.Generator(), 3) is batch


def test_config_problems():
    assert aug.AugmentConfig().problems() == []
    assert aug.AugmentConfig(flip=2.0, crop_scale=(0.5, 0.1)).problems() == [
        "crop_scale: expected 0 < lo <= hi <= 1, got [0.5, 0.1]", "flip: expected in [0, 1], got 2.0"]


def test_item_generator_streams_are_independent_and_stream_0_is_unchanged():
    """Mixup draws from stream 1 of its batch's first clip, not from that clip's augmentation stream."""
    base = torch.rand(4, generator=aug.item_generator(0, 2, 5))
    assert torch.equal(base, torch.rand(4, generator=aug.item_generator(0, 2, 5, stream=0)))
    assert not torch.equal(base, torch.rand(4, generator=aug.item_generator(0, 2, 5, stream=aug.MIXUP_STREAM)))

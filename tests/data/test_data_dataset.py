"""ClipDataset over a tiny synthetic cache: shapes, normalisation, exclusion, determinism, workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zorro_cli.data import augment as aug
from zorro_cli.data.augment import IMAGENET_MEAN, IMAGENET_STD
from zorro_cli.data.cache import Cache, open_cache
from zorro_cli.data.dataset import ClipDataset, collate

TINY = dict(audio_frames=64, frames=4, image_size=32)


def test_train_items(tiny_cache):
    ds = ClipDataset(tiny_cache, "train", **TINY)
    item = ds[0]
    assert item["audio"].shape == (1, 32, 64) and item["audio"].dtype == torch.float32
    assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.float32
    assert item["label"].dtype == torch.long and item["label"].shape == () and 0 <= int(item["label"]) < 4
    assert item["has_audio"] and item["has_video"] and item["index"] == 0 and item["clip_id"] == ds.rows[0].clip_id
    assert len(ds) == 16 and ds.excluded == {"no_audio": 0, "no_video": 0}


def test_missing_modality_is_excluded_not_filled(tiny_cache):
    both = ClipDataset(tiny_cache, None, **TINY)
    assert len(both) == 23 and both.excluded == {"no_audio": 1, "no_video": 0}
    video = ClipDataset(tiny_cache, None, modalities=("video",), **TINY)
    assert len(video) == 24 and "audio" not in video[0] and not video[0]["has_audio"]


def test_audio_only_reads_no_video(tiny_cache, monkeypatch):
    def no_frames(*args, **kwargs):
        raise AssertionError("video read for an audio-only dataset")

    monkeypatch.setattr(Cache, "frames", no_frames)
    ds = ClipDataset(tiny_cache, "train", modalities=("audio",), audio_frames=64)
    item = ds[3]
    assert set(item) == {"audio", "label", "has_audio", "has_video", "clip_id", "index"} and not item["has_video"]


def test_audio_alone_has_one_view_per_window_not_one_per_crop(tiny_cache):
    both = ClipDataset(tiny_cache, "test", mode="eval", eval_clips=2, eval_crops=3, **TINY)
    assert both[1]["audio"].shape == (6, 1, 32, 64)  # with video: each window once per crop, to pair
    audio = ClipDataset(tiny_cache, "test", mode="eval", eval_clips=2, eval_crops=3, modalities=("audio",),
                        audio_frames=64)
    one = ClipDataset(tiny_cache, "test", mode="eval", eval_clips=2, eval_crops=1, modalities=("audio",),
                      audio_frames=64)
    assert audio[1]["audio"].shape == (2, 1, 32, 64)  # alone: crops would be identical copies
    assert torch.equal(audio[1]["audio"], one[1]["audio"])


def test_eval_views_are_deterministic_and_normalised(tiny_cache):
    ds = ClipDataset(tiny_cache, "test", mode="eval", eval_clips=2, eval_crops=3, **TINY)
    a, b = ds[1], ds[1]
    assert a["audio"].shape == (6, 1, 32, 64) and a["video"].shape == (6, 3, 4, 32, 32)
    assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["video"], b["video"])
    cache = open_cache(tiny_cache)
    row = ds.rows[1]
    # 2-s clip, 1-s span (4 frames at 4 fps > 64 audio frames): first centre 0.5 s -> audio frames 18..81
    mel = cache.logmel(row.clip_id).astype(np.float32)[:, 18:82]
    expected = (mel - cache.stats["mel_mean"]) / cache.stats["mel_std"]
    assert np.allclose(a["audio"][0, 0].numpy(), expected, atol=1e-5)
    assert torch.equal(a["audio"][0], a["audio"][2])  # the same audio for the 3 crops of a clip
    frames = torch.from_numpy(cache.frames(row.clip_id, [0, 1, 2, 3])).permute(0, 3, 1, 2)  # slots 0..3
    assert frames.shape == (4, 3, 40, 53)
    left = aug.crop_resize(frames, (0, 0, 40, 40), (32, 32))  # view 0: clip 1 of 2, left crop
    right = aug.crop_resize(frames, (0, 13, 40, 40), (32, 32))  # view 2: clip 1 of 2, right crop
    assert torch.allclose(a["video"][0], aug.normalize_video(left), atol=1e-5)
    assert torch.allclose(a["video"][2], aug.normalize_video(right), atol=1e-5)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1) * 255
    assert torch.allclose(a["video"][0] * std + mean, left.permute(1, 0, 2, 3), atol=1e-3)


def test_train_randomness_is_seed_epoch_index(tiny_cache):
    ds = ClipDataset(tiny_cache, "train", seed=3, **TINY)
    first = ds[2]
    assert torch.equal(first["video"], ds[2]["video"]) and torch.equal(first["audio"], ds[2]["audio"])
    ds.set_epoch(1)
    second = ds[2]
    assert not torch.equal(first["video"], second["video"])
    assert torch.equal(ds[(2, 0)]["video"], first["video"])
    other = ClipDataset(tiny_cache, "train", seed=3, **TINY)
    other.set_epoch(1)
    assert torch.equal(other[2]["audio"], second["audio"])


def test_multilabel_targets(tiny_cache, synth_dir, tmp_path):
    from zorro_cli.data.build import Job, preprocess
    from zorro_cli.recipes import load_recipe

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nclass0/class0_000.mp4,class0;class2\nclass1/class1_000.avi,class1\n")
    cfg = load_recipe("tiny").preprocess
    preprocess(cfg, Job((manifest,), "generic", synth_dir, tmp_path / "ml", workers=0, plain=True))
    ds = ClipDataset(tmp_path / "ml", None, **TINY)
    assert ds.multilabel and ds[0]["label"].tolist() == [1.0, 0.0, 1.0] and ds[1]["label"].tolist() == [0.0, 1.0, 0.0]


def _batches(ds: ClipDataset, **kwargs) -> list[dict]:
    ds.set_epoch(2)
    return list(DataLoader(ds, batch_size=4, shuffle=False, collate_fn=collate, **kwargs))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_two_workers(tiny_cache, context):
    ds = ClipDataset(tiny_cache, "train", seed=1, **TINY)
    ref = _batches(ds)
    got = _batches(ds, num_workers=2, multiprocessing_context=context)
    assert len(got) == len(ref) == 4
    for r, g in zip(ref, got, strict=True):
        assert r["clip_id"] == g["clip_id"]
        assert torch.equal(r["audio"], g["audio"]) and torch.equal(r["video"], g["video"])
        assert torch.equal(r["label"], g["label"]) and r["audio"].shape == (4, 1, 32, 64)


def test_bad_arguments(tiny_cache):
    with pytest.raises(ValueError, match="invalid ClipDataset arguments"):
        ClipDataset(tiny_cache, modalities=("smell",))
    with pytest.raises(ValueError, match="must be >= 1"):
        ClipDataset(tiny_cache, frames=0)

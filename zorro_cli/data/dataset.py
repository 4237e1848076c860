"""``ClipDataset``: a torch Dataset over a preprocessing cache, for training and evaluation.

Legend: F mel bins, A audio frames, T video frames, S image size, C classes, V views (clips x crops).
An item is a dict: ``audio`` float32 [1, F, A] (normalised with the cache's mel mean/std), ``video``
float32 [3, T, S, S] (ImageNet-normalised), ``label`` (float multi-hot [C], or long index; -1 when
unlabelled), ``has_audio``, ``has_video``, ``clip_id``, ``index``. In eval mode ``audio`` is
[V, 1, F, A] and ``video`` [V, 3, T, S, S]. A modality not in ``modalities`` is not read and not
returned; a clip lacking one that is asked for is excluded at construction and counted in ``excluded``.

Randomness is a pure function of ``(seed, epoch, index)``: call ``set_epoch`` before creating the epoch's
DataLoader iterator (workers copy the dataset then; with ``persistent_workers`` index the dataset with
``(index, epoch)`` from the sampler instead) and the data are the same for any number of workers and
after a resume.

Time: log-mel frame ``j`` is at ``j * hop / sample_rate`` s and video slot ``k`` at ``k / fps`` s; the
audio and video windows share their centre instant. ``frame_stride`` picks every n-th stored frame: with
the AudioSet recipe (5 fps, 10-ms hop), ``frames=8, frame_stride=4`` spans the same 6.4 s as 640 audio
frames. A clip shorter than a window holds its last frame / pads the normalised log-mel with 0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ..ranges import crops_problem
from . import augment as aug
from . import views
from .augment import AugmentConfig
from .cache import Cache, IndexRow, IndexView
from .inputs import MelNorm, ModelInputs, mel_normalisation


def holdout_mask(clip_ids: Sequence[str], fraction: float) -> np.ndarray:
    """Which of ``clip_ids`` are held out for validation: ``round(fraction * n)`` of them (at least one
    when ``fraction > 0``, never all), those first in the order of the SHA-1 of their id. The set depends
    on the clips alone (not on their order, the seed or the number of processes), so a resumed or
    differently launched run holds out the same clips."""
    n = len(clip_ids)
    mask = np.zeros(n, bool)
    if fraction <= 0 or n < 2:
        return mask
    k = min(n - 1, max(1, round(fraction * n)))
    order = sorted(range(n), key=lambda i: hashlib.sha1(clip_ids[i].encode("utf-8")).hexdigest())
    mask[order[:k]] = True
    return mask


def _pair(x: int | Sequence[int]) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int) else (int(x[0]), int(x[1]))


class ClipDataset(Dataset):
    """Clips of one (or several) splits of a cache as model-ready tensors."""

    def __init__(self, cache_dir: str | Path | Cache, split: str | Sequence[str] | None = None,
                 mode: Literal["train", "eval"] = "train", modalities: Sequence[str] = ("audio", "video"),
                 audio_frames: int = 640, frames: int = 8, image_size: int | Sequence[int] = 224,
                 frame_stride: int = 1, seed: int = 0, eval_clips: int = 1, eval_crops: int = 3,
                 augment: AugmentConfig | None = None, mel_norm: MelNorm = "global", views: int = 1,
                 holdout: tuple[float, bool] | None = None) -> None:
        self.cache = cache_dir if isinstance(cache_dir, Cache) else Cache(cache_dir)
        bad = [m for m in modalities if m not in ("audio", "video")]
        if bad or not modalities or mode not in ("train", "eval") or crops_problem(eval_crops):
            raise ValueError(f"invalid ClipDataset arguments: modalities={list(modalities)}, mode={mode!r}, "
                             f"eval_crops={eval_crops} (expected audio/video, train/eval, 1 or 3)")
        if min(audio_frames, frames, frame_stride, eval_clips) < 1:
            raise ValueError("audio_frames, frames, frame_stride and eval_clips must be >= 1")
        if views not in (1, 2) or (views == 2 and mode != "train"):
            raise ValueError(f"views={views}: expected 1, or 2 in train mode (two augmented views per clip)")
        self.views = views
        self.mode, self.modalities = mode, tuple(modalities)
        self.audio_frames, self.frames, self.frame_stride = audio_frames, frames, frame_stride
        self.image_size = _pair(image_size)
        self.seed, self.epoch = seed, 0
        self.eval_clips, self.eval_crops = eval_clips, eval_crops
        self.augment = augment if augment is not None else (AugmentConfig() if mode == "train" else aug.NO_AUGMENT)
        splits = None if split is None else {split} if isinstance(split, str) else set(split)
        self.rows, self.excluded = self._select(splits, holdout)
        self.num_classes = len(self.cache.label_names)
        self.multilabel = self.cache.multilabel
        self._norm = self._mel_norm(mel_norm) if "audio" in self.modalities and self.rows else None

    @classmethod
    def from_inputs(cls, cache: str | Path | Cache, inputs: ModelInputs, split: str | Sequence[str] | None,
                    mode: Literal["train", "eval"], *, modalities: Sequence[str] | None = None, seed: int = 0,
                    eval_clips: int = 1, eval_crops: int = 3, augment: AugmentConfig | None = None,
                    views: int = 1, holdout: tuple[float, bool] | None = None) -> ClipDataset:
        """The clips a model with ``inputs`` reads (``modalities``: a subset of its modalities to read;
        ``holdout``: ``(fraction, held)``, only the held-out clips of ``split`` or only the others)."""
        return cls(cache, split=split, mode=mode, modalities=tuple(modalities or inputs.modalities),
                   audio_frames=inputs.audio_frames, frames=inputs.frames, image_size=inputs.image_size,
                   frame_stride=inputs.frame_stride, seed=seed, eval_clips=eval_clips, eval_crops=eval_crops,
                   augment=augment, mel_norm=inputs.mel_norm, views=views, holdout=holdout)

    def _select(self, splits: set[str] | None, holdout: tuple[float, bool] | None) -> tuple[IndexView, dict[str, int]]:
        """The clips of ``splits`` (of its held-out part, or of the rest, per :func:`holdout_mask`) that
        have every requested modality (positions in the index), and how many were left out for lacking one."""
        index = self.cache.index
        keep = index.in_splits(splits)
        if holdout is not None:
            rows = np.flatnonzero(keep)
            held = holdout_mask([index.clip_id[int(i)] for i in rows], holdout[0])
            keep[rows[held != holdout[1]]] = False
        no_audio = keep & ~index.has_audio if "audio" in self.modalities else np.zeros(len(index), bool)
        keep &= ~no_audio
        no_video = keep & ~index.has_video if "video" in self.modalities else np.zeros(len(index), bool)
        keep &= ~no_video
        excluded = {"no_audio": int(no_audio.sum()), "no_video": int(no_video.sum())}
        return index.select(keep), excluded

    def _mel_norm(self, how: MelNorm) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.cache.stats
        if not stats:
            raise ValueError(f"cache {self.cache.dir} has no log-mel statistics (no clip with audio)")
        return mel_normalisation(stats, int(self.cache.settings["n_mels"]), how)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random augmentation ``__getitem__`` draws."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    # --- spans: audio and video windows share a centre instant ----------------------------------------

    @property
    def audio_rate(self) -> float:
        """Log-mel frames per second."""
        return self.cache.settings["sample_rate"] / self.cache.settings["hop_length"]

    def _span(self) -> float:
        return views.window_span(self.modalities, self.audio_frames, self.audio_rate, self.frames,
                                 self.frame_stride, self.cache.settings["fps"])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        row = self.rows[index]
        item: dict[str, Any] = {"label": self._label(row), "has_audio": "audio" in self.modalities,
                                "has_video": "video" in self.modalities, "clip_id": row.clip_id, "index": index}
        g = aug.item_generator(self.seed, epoch, index) if self.mode == "train" else None
        # Training: ``views`` independent draws (window, crop, masks) from the clip's stream; the second
        # (``audio2``/``video2``) is the positive of the first for unimodal contrastive pre-training.
        for suffix in ("", "2")[:self.views]:
            if g is not None:
                centers = [aug.random_center(row.duration_s, self._span(), g)]
            else:
                centers = aug.eval_centers(row.duration_s, self._span(), self.eval_clips)
            if "audio" in self.modalities:
                item["audio" + suffix] = self._audio(row, centers, g)
            if "video" in self.modalities:
                item["video" + suffix] = self._video(row, centers, g)
        return item

    def _label(self, row: IndexRow) -> torch.Tensor:
        if self.multilabel:
            target = torch.zeros(self.num_classes)
            target[list(row.labels)] = 1.0
            return target
        return torch.tensor(row.labels[0] if row.labels else -1, dtype=torch.long)

    def _audio(self, row: IndexRow, centers: list[float], g: torch.Generator | None) -> torch.Tensor:
        mel = torch.from_numpy(self.cache.logmel(row).astype("float32"))  # [F, A_clip]
        mean, std = self._norm  # type: ignore[misc]
        mel = (mel - mean) / std
        if g is None:
            crops = views.crops_for(self.modalities, self.eval_crops)  # audio alone: one view per window
            return views.audio_views(mel, centers, self.audio_rate, self.audio_frames, crops)  # [V,1,F,A]
        start = aug.window_start(centers[0], self.audio_rate, self.audio_frames, row.audio_frames)
        x = aug.fit_length(mel[:, start:start + self.audio_frames], self.audio_frames)  # [F, A]
        return self._augment_audio(x, g).unsqueeze(0)  # [1, F, A]

    def _augment_audio(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        a, (n_f, n_t) = self.augment, x.shape
        x = aug.freq_jitter(x, round(a.freq_jitter * n_f), g)
        return aug.spec_augment(x, g, a.freq_masks, round(a.freq_mask_width * n_f), a.time_masks,
                                round(a.time_mask_width * n_t))

    def _video(self, row: IndexRow, centers: list[float], g: torch.Generator | None) -> torch.Tensor:
        fps = self.cache.settings["fps"]
        if g is None:  # [V, 3, T, S, S]
            return views.video_views(lambda idx: self.cache.frames(row, idx), row.n_frames, centers, fps,
                                     self.frames, self.frame_stride, self.image_size, self.eval_crops)
        start = aug.window_start(centers[0], fps, self.frames * self.frame_stride, row.n_frames)
        idx = aug.frame_indices(start, self.frames, self.frame_stride, row.n_frames)
        clip = torch.from_numpy(self.cache.frames(row, idx)).permute(0, 3, 1, 2)  # [T, 3, H, W]
        a = self.augment
        box = aug.random_resized_box(clip.shape[-2], clip.shape[-1], a.crop_scale, a.crop_ratio, g)
        x = aug.crop_resize(clip, box, self.image_size)
        if aug.uniform(g) < a.flip:
            x = x.flip(-1)
        return aug.normalize_video(x)  # [3, T, S, S]

def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of items (``clip_id`` stays a list of strings)."""
    return default_collate(items)

"""Model inputs from a media file, made exactly as the cache the model trained on (for predict, exports, scripts).

Legend: F mel bins, A audio frames, T video frames, S image size, V views (clips x crops).

A file goes through the cache builder's own code (:func:`zorro_cli.data.pipeline.process_clip`: PyAV
decode at the recorded frame rate and short side, JPEG frames, float16 log-mel) with the preprocessing
settings recorded in a checkpoint's or an export's ``config.json``, then through the evaluation views
the datasets use (:mod:`zorro_cli.data.views`). So a file predicted on gets the tensors ``zorro evaluate``
feeds for the same file in a cache: same window, same crops, same normalisation.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import augment as aug
from ..data import views
from ..data.config import PreprocessConfig
from ..data.inputs import ModelInputs, mel_normalisation
from ..data.jpeg import decode_jpeg
from ..data.media import ClipTask
from ..data.pipeline import ClipFailure, ClipResult, process_clip


def read_config(config: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A ``config.json`` as a dict (a path to the file or its folder, or the dict itself)."""
    if isinstance(config, dict):
        return config
    path = Path(config)
    return json.loads((path / "config.json" if path.is_dir() else path).read_text())


def preprocess_config(config: Mapping[str, Any]) -> PreprocessConfig:
    """The :class:`PreprocessConfig` a model's cache was made with, from its ``config.json``;
    ``ValueError`` when the file records none (a checkpoint older than ``ModelInputs``)."""
    pre = config.get("preprocessing") or {}
    if "sample_rate" not in pre:
        raise ValueError("config.json records no preprocessing settings (re-export it from a newer run)")
    fields = {f.name for f in dataclasses.fields(PreprocessConfig)}
    return PreprocessConfig(**{k: v for k, v in pre.items() if k in fields})


def file_task(media: str | Path) -> ClipTask:
    """The clip task of a whole media file (as a manifest row without a window: the first
    ``max_seconds`` are decoded when the recipe caps them)."""
    return ClipTask(str(media), str(media), str(Path(media).resolve()), (), "")


def reading_config(cfg: PreprocessConfig, modalities: Sequence[str]) -> PreprocessConfig:
    """``cfg`` reading only those of its modalities in ``modalities`` (a stream not asked for is never
    decoded); ``ValueError`` when none is left."""
    wanted = tuple(m for m in cfg.modalities if m in modalities)
    if not wanted:
        raise ValueError(f"the model's cache holds {' and '.join(cfg.modalities)}, asked for "
                         f"{' and '.join(modalities)}")
    return dataclasses.replace(cfg, modalities=wanted)


def decode_file(media: str | Path, cfg: PreprocessConfig, modalities: Sequence[str]) -> ClipResult | ClipFailure:
    """Decode ``media`` as the cache builder would, reading only ``modalities``; a file that cannot be
    read is a ``ClipFailure`` with a one-line reason."""
    return process_clip(file_task(media), reading_config(cfg, modalities))


def present_modalities(clip: ClipResult) -> tuple[str, ...]:
    """The modalities a decoded clip holds."""
    return tuple(m for m, x in (("audio", clip.logmel), ("video", clip.frames)) if x is not None)


def _frame_reader(jpegs: list[bytes]) -> views.FrameReader:
    """Slot indices -> uint8 ``[N, H, W, 3]``; a held frame (the same bytes in several slots) is
    JPEG-decoded once."""
    decoded: dict[int, np.ndarray] = {}

    def read(indices: list[int]) -> np.ndarray:
        for i in indices:
            decoded.setdefault(id(jpegs[i]), decode_jpeg(jpegs[i]))
        return np.stack([decoded[id(jpegs[i])] for i in indices])

    return read


def clip_views(clip: ClipResult, inputs: ModelInputs, clips: int = 1, crops: int = 3,
               modalities: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{"audio": [V, 1, F, A], "video": [V, 3, T, S, S]}`` of a decoded clip for the modalities it
    has (among ``modalities``): ``clips`` windows x ``crops`` crops, as ``ClipDataset`` in eval mode."""
    pre = inputs.preprocessing
    read = tuple(m for m in present_modalities(clip) if modalities is None or m in modalities)
    audio_rate = pre["sample_rate"] / pre["hop_length"]
    span = views.window_span(read, inputs.audio_frames, audio_rate, inputs.frames, inputs.frame_stride, pre["fps"])
    centers = aug.eval_centers(clip.duration_s, span, clips)
    out: dict[str, torch.Tensor] = {}
    if "audio" in read:
        assert clip.logmel is not None
        mean, std = mel_normalisation(pre, int(pre["n_mels"]), inputs.mel_norm)
        mel = (torch.from_numpy(clip.logmel.astype(np.float32)) - mean) / std  # [F, A_clip]
        out["audio"] = views.audio_views(mel, centers, audio_rate, inputs.audio_frames, views.crops_for(read, crops))
    if "video" in read:
        assert clip.frames is not None
        size = inputs.image_size
        out["video"] = views.video_views(_frame_reader(clip.frames), len(clip.frames), centers, pre["fps"],
                                         inputs.frames, inputs.frame_stride,
                                         (size, size) if isinstance(size, int) else size, crops)
    return out


def prepare_inputs(media: str | Path, config: str | Path | dict[str, Any],
                   modalities: Sequence[str] = ("audio", "video")) -> dict[str, np.ndarray]:
    """Decode ``media`` and build model inputs (batch of 1: the centre window, centre crop) for the
    requested modalities: ``{"audio": float32 [1, 1, F, A], "video": float32 [1, 3, T, S, S]}``.
    ``ValueError`` (one line) when the file cannot be decoded or lacks a requested modality."""
    cfg = read_config(config)
    inputs = ModelInputs.from_config(cfg)
    clip = decode_file(media, preprocess_config(cfg), modalities)
    if isinstance(clip, ClipFailure):
        raise ValueError(f"{media}: {clip.reason}")
    lacking = [m for m in modalities if m not in present_modalities(clip)]
    if lacking:
        raise ValueError(f"{media}: no {' or '.join(lacking)} stream")
    return {k: v.numpy() for k, v in clip_views(clip, inputs, 1, 1, modalities).items()}

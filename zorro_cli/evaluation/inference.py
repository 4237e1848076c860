"""Model inputs from a media file, preprocessed as the model was trained (for exports and scripts).

``prepare_inputs(path, config)`` reads the :class:`~zorro_cli.data.inputs.ModelInputs` an export's
``config.json`` (or a checkpoint's) carries — sample rate, mel settings and normalisation statistics, frame rate, short side, input shapes — decodes
the file with PyAV, and returns the evaluation-time view the datasets use (centre window in time,
centre square in space): ``{"audio": float32 [1, 1, F, T], "video": float32 [1, 3, T, H, W]}``.
(Training frames went through JPEG in the cache; inference frames do not: a negligible difference.)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import augment as aug
from ..data.config import PreprocessConfig
from ..data.decode import DecodeRequest, decode_media
from ..data.features import log_mel
from ..data.inputs import ModelInputs, mel_normalisation


def read_config(config: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A ``config.json`` as a dict (a path to the file or its folder, or the dict itself)."""
    if isinstance(config, dict):
        return config
    path = Path(config)
    return json.loads((path / "config.json" if path.is_dir() else path).read_text())


def prepare_inputs(media: str | Path, config: str | Path | dict[str, Any],
                   modalities: Sequence[str] = ("audio", "video")) -> dict[str, np.ndarray]:
    """Decode ``media`` and build model inputs (batch of 1) for the requested modalities."""
    inputs = ModelInputs.from_config(read_config(config))
    pre = inputs.preprocessing
    fields = {f.name for f in dataclasses.fields(PreprocessConfig)}
    pcfg = PreprocessConfig(**{k: v for k, v in pre.items() if k in fields})
    req = DecodeRequest(str(media), 0.0, None, pcfg.max_seconds, fps=pcfg.fps, short_side=pcfg.short_side,
                        sample_rate=pcfg.sample_rate, audio="audio" in modalities, video="video" in modalities,
                        min_coverage=pcfg.min_coverage)
    decoded = decode_media(req)
    out: dict[str, np.ndarray] = {}
    if "audio" in modalities:
        if decoded.audio is None:
            raise ValueError(f"{media}: no audio stream")
        mel = torch.from_numpy(log_mel(decoded.audio, pcfg).astype(np.float16).astype(np.float32))  # [F, A]
        mean, std = mel_normalisation(pre, pcfg.n_mels, inputs.mel_norm)
        rate = pre["sample_rate"] / pre["hop_length"]
        length = inputs.audio_frames
        start = aug.window_start(decoded.duration_s / 2, rate, length, mel.shape[1])
        window = aug.fit_length(((mel - mean) / std)[:, start:start + length], length)  # [F, T]
        out["audio"] = window[None, None].numpy()
    if "video" in modalities:
        if decoded.frames is None:
            raise ValueError(f"{media}: no video stream")
        frames = torch.from_numpy(np.stack(decoded.frames)).permute(0, 3, 1, 2)  # [N, 3, H, W]
        n, stride = inputs.frames, inputs.frame_stride
        start = aug.window_start(decoded.duration_s / 2, pre["fps"], n * stride, len(frames))
        clip = frames[aug.frame_indices(start, n, stride, len(frames))]
        box = aug.eval_boxes(clip.shape[-2], clip.shape[-1], 1)[0]
        size = inputs.image_size
        size = (size, size) if isinstance(size, int) else size
        out["video"] = aug.normalize_video(aug.crop_resize(clip, box, size))[None].numpy()
    return out

"""``ModelInputs``: the one description of what a model reads and how it is made from a cache or a file.

Training writes it into every checkpoint (``config.json`` keys ``inputs`` and ``preprocessing``); export
copies it; and everything that feeds a model reads it back from there: the training and validation
datasets (``ClipDataset.from_inputs``), ``zorro evaluate``, :func:`zorro_cli.evaluation.inference.prepare_inputs`. A setting that is
not here (or not read through here) is a setting that can drift between training and prediction.

``inputs``: modalities, window lengths (``audio_frames`` log-mel frames, ``frames`` video frames every
``frame_stride`` stored frames), ``image_size`` and the log-mel normalisation (``mel_norm``: one mean/std
over every bin, or one per mel bin). ``preprocessing``: the cache's settings (sample rate, mel settings,
frame rate, short side) and its log-mel statistics, for models fed from raw media.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch

if TYPE_CHECKING:
    from .cache import Cache

MelNorm = Literal["global", "per_bin"]
Modality = Literal["audio", "video"]


@dataclass(frozen=True)
class ModelInputs:
    """What a model reads (see the module docstring); ``to_config`` / ``from_config`` round-trip it."""

    modalities: tuple[Modality, ...] = ("audio", "video")
    audio_frames: int = 640
    frames: int = 8
    image_size: int | tuple[int, int] = 224
    frame_stride: int = 1
    mel_norm: MelNorm = "global"
    preprocessing: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.mel_norm not in get_args(MelNorm):
            raise ValueError(f"mel_norm: expected global or per_bin, got {self.mel_norm!r}")

    def to_config(self) -> dict[str, Any]:
        """The ``inputs`` and ``preprocessing`` entries of a checkpoint's ``config.json``."""
        return {"inputs": {"modalities": list(self.modalities), "audio_frames": self.audio_frames,
                           "frames": self.frames,
                           "image_size": self.image_size if isinstance(self.image_size, int) else list(self.image_size),
                           "frame_stride": self.frame_stride, "mel_norm": self.mel_norm},
                "preprocessing": {k: _plain(v) for k, v in self.preprocessing.items()}}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelInputs:
        """Read a checkpoint's (or export's) whole ``config.json``. Older checkpoints without an
        ``inputs`` entry fall back to the model's own shapes, stride 1 and global normalisation."""
        inputs: dict[str, Any] = dict(config.get("inputs") or {})
        model: dict[str, Any] = dict(config.get("model") or {})
        default = cls()
        size = inputs.get("image_size", model.get("image_size", default.image_size))
        return cls(modalities=tuple(inputs.get("modalities", default.modalities)),
                   audio_frames=int(inputs.get("audio_frames", model.get("audio_frames", default.audio_frames))),
                   frames=int(inputs.get("frames", model.get("frames", default.frames))),
                   image_size=size if isinstance(size, int) else (int(size[0]), int(size[1])),
                   frame_stride=int(inputs.get("frame_stride", 1)),
                   mel_norm=inputs.get("mel_norm", "global"),
                   preprocessing=dict(config.get("preprocessing") or {}))

    @classmethod
    def from_cache(cls, cache: Cache, modalities: Sequence[Modality], audio_frames: int, frames: int,
                   image_size: int, frame_stride: int, mel_norm: MelNorm) -> ModelInputs:
        """The inputs of a model trained on ``cache`` (its settings and statistics recorded)."""
        return cls(tuple(modalities), audio_frames, frames, image_size, frame_stride, mel_norm,
                   {**dict(cache.settings), **dict(cache.stats)})


def mel_normalisation(stats: Mapping[str, Any], n_mels: int, how: MelNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` to normalise a log-mel ``[F, A]`` with: scalars (``global``) or ``[F, 1]``
    (``per_bin``), std floored at 1e-5 (a silent bin would divide by zero)."""
    if how == "per_bin":
        return (torch.tensor(stats["mel_mean_per_bin"], dtype=torch.float32).view(n_mels, 1),
                torch.tensor(stats["mel_std_per_bin"], dtype=torch.float32).clamp(min=1e-5).view(n_mels, 1))
    return torch.tensor(float(stats["mel_mean"])), torch.tensor(max(float(stats["mel_std"]), 1e-5))


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v

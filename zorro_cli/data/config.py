"""``PreprocessConfig``: the recipe's ``preprocess:`` section (what a cache stores and how it is decoded).

Values marked [paper] come from the Zorro paper (128 mel bins x 640 frames of log-mel, 8 RGB frames);
everything else is a [choice] of ours and stays configurable. Kept free of heavy imports so that
``zorro_cli.recipes`` loads fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..ranges import FRACTION, Range, at_least, positive, range_problems

MODALITIES: tuple[str, ...] = ("audio", "video")

# Allowed values (``zorro_cli.ranges``: NaN and infinity never are); cross-field checks in ``problems``.
PREPROCESS_RANGES: dict[str, Range] = {
    "sample_rate": at_least(1, 768000), "n_mels": at_least(1, 1024), "window_ms": positive(1000),
    "hop_ms": positive(1000), "n_fft": at_least(1, 1 << 16, optional=True), "f_min": at_least(0),
    "f_max": positive(optional=True), "log_offset": positive(), "fps": positive(), "short_side": at_least(1, 8192),
    "jpeg_quality": at_least(1, 100), "max_seconds": positive(optional=True), "min_coverage": Range(0, 1, lo_open=True),
    "shard_size": at_least(1, 1 << 20), "decode_threads": at_least(1, 1024), "clip_timeout_s": positive(optional=True),
}
AUGMENT_RANGES: dict[str, Range] = {
    "crop_scale": FRACTION, "crop_ratio": positive(), "flip": FRACTION, "freq_masks": at_least(0, 1000),
    "freq_mask_width": FRACTION, "time_masks": at_least(0, 1000), "time_mask_width": FRACTION,
    "freq_jitter": FRACTION, "mixup_alpha": at_least(0),
}

# Settings that do not change a byte of the cache (left out of the fingerprint).
RUNTIME_KEYS: frozenset[str] = frozenset({"decode_threads", "clip_timeout_s"})


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw media become a cache. Times in seconds unless a name says otherwise."""

    sample_rate: int = 16000  # [choice] 16 kHz mono, as AST / MBT / CAV-MAE
    n_mels: int = 128  # [paper] 128 mel bins
    window_ms: float = 25.0  # [choice] Kaldi/AST convention
    hop_ms: float = 10.0  # [choice] 640 frames x 10 ms = 6.4 s of audio per model input
    n_fft: int | None = None  # [choice] None: next power of two >= 2 x window (1024 at 16 kHz / 25 ms)
    f_min: float = 0.0  # [choice]
    f_max: float | None = None  # [choice] None: sample_rate / 2
    log_offset: float = 1e-6  # [choice] log(mel power + offset)
    fps: float = 5.0  # [choice] frames stored per second (resampled from the stream timestamps)
    short_side: int = 256  # [choice] frames stored with this short side (aspect kept)
    jpeg_quality: int = 90  # [choice] frames stored as JPEG bytes
    modalities: tuple[Literal["audio", "video"], ...] = ("audio", "video")
    clip_window: Literal["auto", "manifest", "whole"] = "auto"  # see zorro_cli.data.manifests
    max_seconds: float | None = None  # [choice] cap a clip that the manifest gives no window for
    min_coverage: float = 0.9  # [choice] a stream must decode >= this share of its expected span
    media_patterns: tuple[str, ...] = ()  # () = the format's default patterns (manifests.py)
    shard_size: int = 256  # [choice] clips per HDF5 shard
    decode_threads: int = 1  # FFmpeg threads per decoder; parallelism comes from --workers
    clip_timeout_s: float | None = 600.0  # [choice] a clip still decoding after this goes to failures.csv

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "media_patterns", tuple(self.media_patterns))

    def problems(self) -> list[str]:
        """Every inconsistency, as ``key: what is wrong`` strings (empty when valid)."""
        out = range_problems(self, PREPROCESS_RANGES)
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            out.append(f"modalities: expected a non-empty subset of {list(MODALITIES)}, got {list(self.modalities)}")
        if self.n_fft is not None and self.n_fft < self.win_length:
            out.append(f"n_fft: expected >= the window ({self.win_length} samples), got {self.n_fft}")
        if self.f_max is not None and not self.f_min < self.f_max <= self.sample_rate / 2:
            out.append(f"f_max: expected in (f_min, sample_rate / 2], got {self.f_max}")
        return out

    @property
    def win_length(self) -> int:
        """Analysis window in samples (400 at 16 kHz / 25 ms)."""
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        """Hop in samples (160 at 16 kHz / 10 ms)."""
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def fft_size(self) -> int:
        """``n_fft``, or the next power of two >= twice the window: at 16 kHz, 512 points (31 Hz bins)
        leave the lowest of 128 mel filters empty; 1024 (16 Hz bins) does not."""
        return self.n_fft if self.n_fft is not None else 1 << (2 * self.win_length - 1).bit_length()

    def cache_settings(self) -> dict[str, Any]:
        """The settings that determine the cache's bytes (fingerprinted; stored in every shard)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in RUNTIME_KEYS}
        out.update(win_length=self.win_length, hop_length=self.hop_length, n_fft=self.fft_size,
                   f_max=self.f_max if self.f_max is not None else self.sample_rate / 2)
        out["modalities"] = list(self.modalities)
        out["media_patterns"] = list(self.media_patterns)
        return out


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation. All values are [choice]s (the paper names SpecAugment and frequency jitter
    without details); mask widths and jitter are fractions of the mel bins / audio frames."""

    crop_scale: tuple[float, float] = (0.35, 1.0)  # area share of the random resized crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range of the crop
    flip: float = 0.5  # probability of a horizontal flip
    freq_masks: int = 2  # SpecAugment frequency masks ...
    freq_mask_width: float = 0.15  # ... each up to this share of F
    time_masks: int = 2  # SpecAugment time masks ...
    time_mask_width: float = 0.1  # ... each up to this share of A
    freq_jitter: float = 0.03  # shift the mel axis by up to this share of F (4 of 128 bins)
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixup in ``mixup_batch``; 0 = off

    def problems(self) -> list[str]:
        """Every inconsistency, as ``key: what is wrong`` strings."""
        out = []
        if not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            out.append(f"crop_scale: expected 0 < lo <= hi <= 1, got {list(self.crop_scale)}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            out.append(f"crop_ratio: expected 0 < lo <= hi, got {list(self.crop_ratio)}")
        return out + range_problems(self, AUGMENT_RANGES)

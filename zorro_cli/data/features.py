"""Pure audio features: mono waveform -> log-mel (torchaudio), and the dataset statistics that normalise it.

Legend: F mel bins, T frames, N samples. Frame ``j`` is centred on sample ``j * hop`` (``center=True``),
so a clip of N samples gives ``T = 1 + N // hop`` frames and frame times line up with the video slots.

torch and torchaudio are imported by the functions that compute a log-mel, not by this module: the main
process of ``zorro preprocess`` only sums moments (``finish_moments``), and importing torch would add
~1.2 s to every run's start-up (the decode workers get it from their fork server's preload).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .config import PreprocessConfig

if TYPE_CHECKING:
    import torchaudio


def mel_frames(n_samples: int, hop_length: int) -> int:
    """Number of log-mel frames for ``n_samples`` (``center=True`` framing)."""
    return 1 + n_samples // hop_length


@lru_cache(maxsize=4)
def _mel(sample_rate: int, n_fft: int, win_length: int, hop_length: int, f_min: float, f_max: float,
         n_mels: int) -> torchaudio.transforms.MelSpectrogram:
    import torch
    import torchaudio

    # pad_mode="constant": reflect padding fails on clips shorter than half a window.
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length, f_min=f_min,
        f_max=f_max, n_mels=n_mels, window_fn=torch.hann_window, power=2.0, center=True, pad_mode="constant")


def log_mel(wave: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """float32 ``[F, T]`` = log(mel power + ``log_offset``) of a mono float waveform ``[N]``."""
    import torch

    s = cfg.cache_settings()
    mel = _mel(cfg.sample_rate, s["n_fft"], s["win_length"], s["hop_length"], cfg.f_min, s["f_max"], cfg.n_mels)
    with torch.no_grad():
        power = mel(torch.as_tensor(np.ascontiguousarray(wave, dtype=np.float32)))  # [F, T]
    return torch.log(power + cfg.log_offset).numpy()


def mel_moments(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-bin sum and sum of squares (float64 ``[F]``) and the frame count of a ``[F, T]`` log-mel."""
    x = mel.astype(np.float64)
    return x.sum(axis=1), np.square(x).sum(axis=1), int(x.shape[1])


def finish_moments(total: np.ndarray, total_sq: np.ndarray, count: int) -> dict[str, list[float] | float]:
    """Mean and std per bin and over all bins from accumulated ``mel_moments``."""
    if count <= 0:
        return {}
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    g_mean = float(total.sum() / (count * len(total)))
    g_std = float(np.sqrt(max(total_sq.sum() / (count * len(total)) - g_mean**2, 0.0)))
    return {"mel_mean": g_mean, "mel_std": g_std, "mel_mean_per_bin": mean.tolist(),
            "mel_std_per_bin": std.tolist(), "mel_frames": count}

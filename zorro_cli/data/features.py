"""Pure audio features: mono waveform -> log-mel (numpy), and the dataset statistics that normalise it.

Legend: F mel bins, T frames, N samples, K = n_fft // 2 + 1 frequency bins. Frame ``j`` is centred on
sample ``j * hop`` (``center=True``), so a clip of N samples gives ``T = 1 + N // hop`` frames and frame
times line up with the video slots.

The log-mel is the one ``torchaudio.transforms.MelSpectrogram`` computes with these settings (periodic
Hann window of ``win_length`` centred in ``n_fft``, zero padding of ``n_fft // 2`` at both ends, power 2,
HTK mel scale, triangular filters without area normalisation; tested equal to torchaudio within float32
rounding), written on numpy's FFT so that the processes that decode never import torch: a decode worker
then starts ~1 s sooner (torch's import in its fork server), and the main process of ``zorro preprocess``
only sums moments (``finish_moments``). Computed in float64 and returned as float32: the values do not
depend on how many threads BLAS runs (tested), so every worker count gives the same cache.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from .config import PreprocessConfig


def mel_frames(n_samples: int, hop_length: int) -> int:
    """Number of log-mel frames for ``n_samples`` (``center=True`` framing)."""
    return 1 + n_samples // hop_length


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@lru_cache(maxsize=8)
def mel_filters(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """float32 ``[K, F]`` triangular HTK-mel filters over ``n_freqs`` bins from 0 to ``sample_rate // 2``
    Hz (torchaudio's ``melscale_fbanks`` with ``norm=None, mel_scale="htk"``); warns when a filter is all
    zero (more mel bins than the FFT resolves)."""
    freqs = np.linspace(0, sample_rate // 2, n_freqs, dtype=np.float32)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2, dtype=np.float32))
    edges = edges.astype(np.float32)
    widths = np.diff(edges)  # [F + 1]
    slopes = edges[None, :] - freqs[:, None]  # [K, F + 2]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    fb = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    if (fb.max(axis=0) == 0.0).any():
        warnings.warn(f"At least one mel filter is all zero: n_mels ({n_mels}) is too high for "
                      f"{n_freqs} frequency bins", stacklevel=2)
    fb.flags.writeable = False
    return fb


@lru_cache(maxsize=8)
def _hann(win_length: int) -> np.ndarray:
    """Periodic Hann window (float64 ``[win_length]``)."""
    out = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)
    out.flags.writeable = False
    return out


def power_spectrogram(wave: np.ndarray, n_fft: int, win_length: int, hop_length: int) -> np.ndarray:
    """float64 ``[T, K]`` |STFT|^2 of a mono ``[N]`` waveform: frame ``j`` is the ``n_fft`` samples centred
    on ``j * hop_length`` (zero padding of ``n_fft // 2`` at both ends) times a Hann window of
    ``win_length`` centred in them.

    Only the window's span is transformed (zero-padded to ``n_fft`` at its end): that moves the frame in
    time, which changes the phases and not the power. float64 FFT (numpy's float32 one is slower here)."""
    left = n_fft // 2 - (n_fft - win_length) // 2  # samples of padding before the first window's span
    x = np.zeros(len(wave) + left + max(left, win_length - left), np.float64)  # the last span fits too
    x[left:left + len(wave)] = wave
    frames = np.lib.stride_tricks.sliding_window_view(x, win_length)[::hop_length]  # [T, win], a view
    frames = frames[:mel_frames(len(wave), hop_length)]
    spec = np.fft.rfft(frames * _hann(win_length), n=n_fft, axis=-1)
    return np.square(spec.real) + np.square(spec.imag)


def log_mel(wave: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """float32 ``[F, T]`` = log(mel power + ``log_offset``) of a mono float waveform ``[N]``."""
    s = cfg.cache_settings()
    n_fft = s["n_fft"]
    power = power_spectrogram(wave, n_fft, s["win_length"], s["hop_length"])  # [T, K]
    fb = mel_filters(n_fft // 2 + 1, float(cfg.f_min), float(s["f_max"]), cfg.n_mels, cfg.sample_rate)
    # float64 through the projection and the log: BLAS sums in an order that depends on its thread count
    # (a decode worker has one thread, a run with --workers 0 all the cores), and in float32 that order
    # showed in the stored float16 values; in float64 it stays ~1e-16 below their rounding
    mel = (power @ fb.astype(np.float64)).T  # [F, T]
    return np.log(mel + cfg.log_offset).astype(np.float32)


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

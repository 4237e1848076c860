"""Log-mel features and the statistics that normalise them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zorro_cli.data.config import PreprocessConfig
from zorro_cli.data.features import (
    finish_moments,
    log_mel,
    mel_filters,
    mel_frames,
    mel_moments,
    power_spectrogram,
)


@pytest.mark.filterwarnings("error")  # no empty mel filter at the paper-scale defaults
def test_frames_and_sizes():
    cfg = PreprocessConfig()
    assert (cfg.win_length, cfg.hop_length, cfg.fft_size) == (400, 160, 1024)
    assert mel_frames(160000, 160) == 1001 and mel_frames(0, 160) == 1
    mel = log_mel(np.zeros(16000, np.float32), cfg)
    assert mel.shape == (128, 101) and mel.dtype == np.float32
    assert np.allclose(mel, np.log(1e-6))  # silence sits at the log offset


def test_a_tone_lights_its_mel_bin():
    cfg = PreprocessConfig(n_mels=32)
    t = np.arange(16000) / 16000
    low = log_mel(np.sin(2 * np.pi * 300 * t).astype(np.float32), cfg).mean(axis=1).argmax()
    high = log_mel(np.sin(2 * np.pi * 3000 * t).astype(np.float32), cfg).mean(axis=1).argmax()
    assert low < high
    assert log_mel(np.ones(100, np.float32), cfg).shape == (32, 1)  # shorter than a window still works


def test_moments():
    s, sq, n = mel_moments(np.array([[1, 2, 3], [0, 0, 6]], np.float16))
    assert s.tolist() == [6.0, 6.0] and sq.tolist() == [14.0, 36.0] and n == 3
    stats = finish_moments(s, sq, n)
    assert stats["mel_mean"] == pytest.approx(2.0)
    assert stats["mel_std"] == pytest.approx(np.std([1, 2, 3, 0, 0, 6]))
    assert stats["mel_mean_per_bin"] == [2.0, 2.0]
    assert stats["mel_std_per_bin"] == pytest.approx([np.std([1, 2, 3]), np.std([0, 0, 6])])
    assert finish_moments(np.zeros(2), np.zeros(2), 0) == {}


@pytest.mark.parametrize("settings", [{}, {"n_mels": 32, "n_fft": 400},
                                      {"sample_rate": 22050, "f_min": 50.0, "f_max": 8000.0, "n_mels": 64,
                                       "window_ms": 32.0, "hop_ms": 8.0},
                                      {"window_ms": 25.0625, "n_fft": 1025, "n_mels": 64}])  # odd window, odd FFT
def test_log_mel_is_torchaudios(settings):
    """The numpy log-mel equals torchaudio's MelSpectrogram with the same settings (float32 rounding)."""
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    cfg = PreprocessConfig(**settings)
    s = cfg.cache_settings()
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=s["n_fft"], win_length=s["win_length"], hop_length=s["hop_length"],
        f_min=cfg.f_min, f_max=s["f_max"], n_mels=cfg.n_mels, window_fn=torch.hann_window, power=2.0,
        center=True, pad_mode="constant")
    fb = torchaudio.functional.melscale_fbanks(s["n_fft"] // 2 + 1, cfg.f_min, s["f_max"], cfg.n_mels,
                                               cfg.sample_rate).numpy()
    assert np.allclose(mel_filters(s["n_fft"] // 2 + 1, cfg.f_min, s["f_max"], cfg.n_mels, cfg.sample_rate), fb,
                       rtol=0, atol=5e-5)  # float32 rounding of the band edges
    rng = np.random.default_rng(0)
    for n in (1, 399, 400, 401, 16000, 48017):
        wave = (0.1 * rng.standard_normal(n)).astype(np.float32)
        with torch.no_grad():
            expected = torch.log(ref(torch.as_tensor(wave)) + cfg.log_offset).numpy()
        got = log_mel(wave, cfg)
        assert got.shape == (cfg.n_mels, mel_frames(n, s["hop_length"]))  # frame j centred on sample j * hop
        # with an odd FFT, torch's padding (n_fft // 2 a side) is one sample short of a frame centred on
        # the last sample: it drops that frame when N is a multiple of the hop
        t = expected.shape[1]
        assert t == (got.shape[1] if s["n_fft"] % 2 == 0 else 1 + (n - 1) // s["hop_length"])
        assert np.abs(got[:, :t] - expected).max() < 2e-4


def test_power_spectrogram_literal():
    """A constant signal of 1 through a 4-sample periodic Hann window [0, .5, 1, .5] in 4 FFT bins, hop 2:
    the middle frame sees the whole window (DC = 2, then 1, 0); the edge frames see half of it."""
    p = power_spectrogram(np.ones(4, np.float32), n_fft=4, win_length=4, hop_length=2)
    assert p.shape == (3, 3)
    assert np.allclose(p[1], [4.0, 1.0, 0.0])
    assert np.allclose(p[0], [2.25, 1.25, 0.25])  # samples [0, 0, 1, 1] x window: [0, 0, 1, .5]


def test_empty_mel_filter_warns():
    with pytest.warns(UserWarning, match="n_mels"):
        mel_filters(9, 0.0, 8000.0, 64, 16000)


def test_log_mel_does_not_depend_on_the_blas_threads():
    """A decode worker runs one BLAS thread, a ``--workers 0`` run as many as the machine has: the stored
    values must not depend on it (in float32 the matmul's summation order showed in the float16 values)."""
    code = ("import hashlib, numpy as np\n"
            "from zorro_cli.data.config import PreprocessConfig\n"
            "from zorro_cli.data.features import log_mel\n"
            "rng, h = np.random.default_rng(0), hashlib.sha256()\n"
            "for n in (16000, 97000, 160000, 480000, 1120000):\n"  # float32 flipped a value at 480000 here
            "    w = (0.1 * rng.standard_normal(n)).astype(np.float32)\n"
            "    for cfg in (PreprocessConfig(), PreprocessConfig(n_mels=32)):\n"
            "        h.update(log_mel(w, cfg).astype(np.float16).tobytes())\n"
            "print(h.hexdigest())\n")
    root = Path(__file__).resolve().parents[2]
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                              env={**os.environ, "OPENBLAS_NUM_THREADS": n, "OMP_NUM_THREADS": n,
                                   "PYTHONPATH": str(root)}).stdout
               for n in ("1", "2", "4")}
    assert len(digests) == 1, digests

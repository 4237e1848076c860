"""Log-mel features and the statistics that normalise them."""

from __future__ import annotations

import numpy as np
import pytest

from zorro_cli.data.config import PreprocessConfig
from zorro_cli.data.features import finish_moments, log_mel, mel_frames, mel_moments


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

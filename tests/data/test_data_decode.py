"""Decoding: sample-and-hold resampling, geometry, windows, and the real files' oddities."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from zorro_cli.data.decode import (
    DecodeError,
    DecodeRequest,
    HoldSampler,
    decode_media,
    output_size,
    rotation_turns,
)
from zorro_cli.data.synth import write_clip


def slots(times: list[float], fps: float, end: float | None, last_end: float) -> list[int]:
    s = HoldSampler(fps, end)
    return [s.push(t) for t in times] + [s.finish(last_end)]


def test_hold_sampler():
    assert slots([0.0, 0.3, 0.6], fps=5, end=None, last_end=0.9) == [0, 2, 1, 2]
    assert slots([0.0, 0.3, 0.6], fps=5, end=0.5, last_end=0.9) == [0, 2, 1, 0]
    assert slots([0.0], fps=4, end=None, last_end=0.04) == [0, 1]  # one frame still fills a slot
    assert slots([0.5], fps=10, end=None, last_end=0.7) == [0, 7]  # slots before the first frame are its
    assert slots([0.0, 1.0, 2.0], fps=4, end=None, last_end=3.0) == [0, 4, 4, 4]  # 1 fps upsampled


def test_geometry():
    assert output_size(568, 320, None, 40) == (71, 40)
    assert output_size(340, 256, Fraction(64, 51), 40) == (67, 40)  # display aspect applied
    assert output_size(1, 1, None, 40) == (40, 40)
    assert [rotation_turns(r) for r in (-90, 90, 180, 0, None, -2147483648)] == [3, 1, 2, 0, 0, 0]


@pytest.fixture(scope="module")
def clock_video(tmp_path_factory) -> Path:
    """4 fps for 3 s; frame i is uniform grey 10 + 20 i, so a decoded level names its source frame."""
    frames = np.stack([np.full((48, 64, 3), 10 + 20 * i, np.uint8) for i in range(12)])
    path = tmp_path_factory.mktemp("clock") / "clock.mp4"
    write_clip(path, frames, 4, None, "mp4")
    return path


def test_window_and_rate(clock_video):
    d = decode_media(DecodeRequest(str(clock_video), start=1.0, end=2.5, fps=2, short_side=24, audio=False))
    levels = [round(float(f.mean())) for f in d.frames]
    assert len(levels) == 3 and np.allclose(levels, [90, 130, 170], atol=3)  # source frames 4, 6, 8
    assert d.frames[0].shape == (24, 32, 3) and d.duration_s == pytest.approx(1.5)
    whole = decode_media(DecodeRequest(str(clock_video), fps=8, short_side=24, audio=False))
    assert len(whole.frames) == 24 and whole.frames[0] is whole.frames[1]  # 4 -> 8 fps: each frame held twice


def test_audio_window_and_cap(tmp_path):
    path = tmp_path / "ramp.wav"
    write_clip(path, None, 0, (np.arange(44100 * 3) / 44100 / 10).astype(np.float32), "wav")
    d = decode_media(DecodeRequest(str(path), start=1.0, end=2.0, sample_rate=16000))
    assert d.frames is None and len(d.audio) == 16000
    assert d.audio[100] == pytest.approx(0.1 + 100 / 16000 / 10, abs=1e-3)
    assert d.audio[-100] == pytest.approx(0.2 - 100 / 16000 / 10, abs=1e-3)
    capped = decode_media(DecodeRequest(str(path), limit=0.5, sample_rate=16000))
    assert len(capped.audio) == 8000
    tail = decode_media(DecodeRequest(str(path), start=2.0, end=4.0, sample_rate=16000))
    assert len(tail.audio) == 16000  # a window past the end of the media: what the header promises
    with pytest.raises(DecodeError, match="after the end of the audio stream"):
        decode_media(DecodeRequest(str(path), start=5.0, end=6.0, sample_rate=16000))
    with pytest.raises(DecodeError, match="no video stream"):
        decode_media(DecodeRequest(str(path), audio=False))


def real(shared_data: Path, name: str) -> str:
    return str(shared_data / "real_videos" / name)


def test_rotation_metadata_applied(shared_data):
    plain = decode_media(DecodeRequest(real(shared_data, "decord__video_0.mov"), fps=4, short_side=40))
    turned = decode_media(DecodeRequest(real(shared_data, "decord__video_90.mov"), fps=4, short_side=40))
    assert plain.frames[0].shape == (40, 71, 3) and turned.frames[0].shape == (71, 40, 3)


def test_timestamps_not_nominal_rate(shared_data):
    # AVI with packed B-frames: decode-order stamps on presentation-order frames, sorted back.
    avi = decode_media(DecodeRequest(real(shared_data, "mmaction2__test.avi"), fps=25, short_side=16, audio=False))
    assert len({id(f) for f in avi.frames}) == 164 and len(avi.frames) == 165  # starts at 0.04 s: slot 0 held
    # VVC whose header start time (2.12 s) is later than its first frame (1.16 s).
    vvc = decode_media(DecodeRequest(real(shared_data, "mp4ff__vvc_400kbps_2s.mp4"), fps=4, short_side=16))
    assert len(vvc.frames) == 8 and vvc.duration_s == pytest.approx(2.0)
    # MPEG-TS: clock starts at 1.46 s; audio and video both start at 0 in the clip.
    ts = decode_media(DecodeRequest(real(shared_data, "derived__bbb_prog_10s_remux.ts"), fps=4, short_side=16))
    assert len(ts.frames) == 40 and abs(len(ts.audio) / 16000 - 9.94) < 0.05


def test_silent_truncation_is_caught(shared_data):
    bad = shared_data / "bad_videos"
    with pytest.raises(DecodeError, match=r"video decoded for 0.033 of 2.736 s"):
        decode_media(DecodeRequest(str(bad / "made__truncated_5k.webm"), fps=4, short_side=16))
    with pytest.raises(DecodeError, match=r"no video decoded \(header says 231.231 s\)"):
        decode_media(DecodeRequest(str(bad / "mp4parse__invalid_userdata.mp4"), fps=4, short_side=16))

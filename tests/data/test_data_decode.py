"""Decoding: sample-and-hold resampling, geometry, windows, and the real files' oddities."""

from __future__ import annotations

import math
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


@pytest.fixture(scope="module")
def colour_video(tmp_path_factory) -> Path:
    """64x48 frames in four flat quadrants: red, green, blue, grey (BT.601 limited range, as encoded)."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:24, :32], img[:24, 32:], img[24:, :32], img[24:, 32:] = (200, 30, 40), (40, 190, 60), (30, 50, 210), 128
    path = tmp_path_factory.mktemp("colour") / "colour.mp4"
    write_clip(path, np.stack([img] * 4), 4, None, "mp4")
    return path


def test_colours_survive_decoding_scaling_and_jpeg(colour_video):
    """Flat saturated patches decode, scale (53x40: odd width, partial JPEG blocks) and JPEG-code to the
    colours that went in."""
    from zorro_cli.data.jpeg import decode_jpeg, encode_jpeg

    req = DecodeRequest(str(colour_video), fps=4, short_side=40, audio=False)
    got = decode_jpeg(decode_media(req, lambda p: encode_jpeg(p, 90)).frames[0])
    assert got.shape == (40, 53, 3)
    truth = [((2, 16, 2, 22), (200, 30, 40)), ((2, 16, 31, 51), (40, 190, 60)),
             ((24, 38, 2, 22), (30, 50, 210)), ((24, 38, 31, 51), (128, 128, 128))]  # patch interiors
    for (r0, r1, c0, c1), rgb in truth:
        np.testing.assert_allclose(got[r0:r1, c0:c1].reshape(-1, 3).mean(0), rgb, atol=4)


@pytest.fixture(scope="module")
def b_frame_video(tmp_path_factory) -> Path:
    """25 fps H.264 with non-reference B-frames; frame i is uniform grey 8 + 4 i (so a level names its frame)."""
    import av

    path = tmp_path_factory.mktemp("bframes") / "b.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"bf": "3", "x264-params": "b-pyramid=none:scenecut=0",
                                                          "g": "12", "threads": "1"})
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 + 4 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


@pytest.mark.parametrize(("fps", "start", "end"), [(5, 0.0, None), (4, 0.5, 2.0), (7, 0.13, 1.9), (25, 0.0, 1.0),
                                                   (1, 0.0, None)])
def test_unneeded_frames_are_not_decoded_and_nothing_changes(b_frame_video, fps, start, end):
    """Non-reference frames that fill no slot are left undecoded; every slot still shows the frame it
    showed when every frame was decoded (levels checked against the frame the slot's time selects)."""
    def decode(skip: bool):
        return decode_media(DecodeRequest(str(b_frame_video), start, end, fps=fps, short_side=16, audio=False,
                                          skip_unneeded=skip))

    full, skipped = decode(False), decode(True)
    assert len(full.frames) == len(skipped.frames)
    for a, b in zip(full.frames, skipped.frames, strict=True):
        assert np.array_equal(a, b)
    assert [id(f) for f in full.frames].count(id(full.frames[0])) == [id(f) for f in skipped.frames].count(
        id(skipped.frames[0]))
    expected = [8 + 4 * math.floor(round((start + k / fps) * 25, 6)) for k in range(len(full.frames))]
    assert np.allclose([float(f.mean()) for f in skipped.frames], expected, atol=2)
    if fps < 25:
        assert skipped.info["frames_decoded"] < full.info["frames_decoded"]  # B-frames left undecoded


def test_skipping_leaves_every_real_file_unchanged(shared_data):
    """Every real file (H.264/HEVC with B-frames, VP8/9, AV1, MPEG-2/4, AVI packed B-frames, VFR, ...) and
    every broken one: the same frames, slots, audio and errors with and without skipping."""
    files = sorted(p for folder in ("real_videos", "bad_videos") for p in (shared_data / folder).iterdir()
                   if p.suffix not in (".csv", ".tsv"))
    skipped_any = False
    windows = [(0.0, None, 5), (1.3, 3.9, 7), (5.0, 7.5, 10)]  # the whole file; windows that seek
    cases = [(p, w) for p in files for w in (windows if p.parent.name == "real_videos" else windows[:1])]
    for path, (start, end, fps) in cases:  # (broken files: partial decodes accepted, so what decoded is compared)
        out = []
        for skip in (False, True):
            try:
                out.append(decode_media(DecodeRequest(str(path), start, end, fps=fps, short_side=16,
                                                      skip_unneeded=skip, min_coverage=0.01)))
            except DecodeError as exc:
                out.append(str(exc))
        a, b = out
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, path.name
            continue
        assert len(a.frames or []) == len(b.frames or []), path.name
        for x, y in zip(a.frames or [], b.frames or [], strict=True):
            assert np.array_equal(x, y), path.name
        assert (a.audio is None) == (b.audio is None) and (a.audio is None or np.array_equal(a.audio, b.audio))
        assert {k: v for k, v in a.info.items() if k != "frames_decoded"} == {
            k: v for k, v in b.info.items() if k != "frames_decoded"}, path.name
        skipped_any |= (b.info.get("frames_decoded") or 0) < (a.info.get("frames_decoded") or 0)
    assert skipped_any


def test_a_clip_that_decodes_too_long_becomes_a_failure(clock_video, tmp_path):
    """``clip_timeout_s``: the clip is reported (one line, the setting named), the next one is unaffected,
    and no alarm is left armed."""
    import signal
    import time

    from zorro_cli.data import pipeline
    from zorro_cli.data.config import PreprocessConfig
    from zorro_cli.data.media import ClipTask

    cfg = PreprocessConfig(fps=4, short_side=16, n_mels=32, modalities=("video",), clip_timeout_s=0.05)
    slow_encode = pipeline.encode_jpeg

    def slow(rgb, quality):  # each kept frame takes 0.1 s: 12 frames, far past 0.05 s
        time.sleep(0.1)
        return slow_encode(rgb, quality)

    task = ClipTask("c", "clock.mp4", str(clock_video), (), "train")
    pipeline.encode_jpeg = slow
    try:
        failed = pipeline.process_clip(task, cfg)
    finally:
        pipeline.encode_jpeg = slow_encode
    assert isinstance(failed, pipeline.ClipFailure)
    assert failed.reason == "still decoding after clip_timeout_s = 0.05 s"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    ok = pipeline.process_clip(task, PreprocessConfig(fps=4, short_side=16, n_mels=32, modalities=("video",),
                                                      clip_timeout_s=30))
    assert isinstance(ok, pipeline.ClipResult) and len(ok.frames) == 12
    assert "clip_timeout_s: expected > 0" in "; ".join(PreprocessConfig(clip_timeout_s=0).problems())

"""A small synthetic audio-visual dataset written as REAL media files (PyAV encoders) + a generic manifest.

The class decides both what is seen (the colour of a moving square and its direction) and what is heard
(a tone's pitch and the rate of its amplitude rhythm); every clip draws its own position, speed, size,
background, distractor, phase, loudness and noise, so the task is learnable but not trivial. Containers
cycle through ``containers`` (MP4 H.264+AAC, MKV H.264+MP3, AVI MPEG-4+MP3, WebM VP8+Opus); the last
``silent_clips`` clips have no audio stream. Deterministic for a given ``seed`` (bit-exact muxing).
"""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np

# container -> (video codec, audio codec, audio sample rate)
CODECS: dict[str, tuple[str, str, int]] = {
    "mp4": ("libx264", "aac", 16000),
    "mkv": ("libx264", "libmp3lame", 16000),
    "avi": ("mpeg4", "libmp3lame", 16000),
    "webm": ("libvpx", "libopus", 48000),
    "wav": ("", "pcm_s16le", 44100),  # audio only (ESC-50 style)
}
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [240, 200, 30], [200, 60, 220],
                    [30, 210, 210], [250, 130, 20], [140, 140, 140]], dtype=np.float32)
DIRECTIONS = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)]


def class_pitch(c: int) -> float:
    """Tone frequency (Hz) of class ``c``: a fourth apart from 220 Hz."""
    return 220.0 * 2 ** (5 * c / 12)


def render_frames(c: int, n: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``[n, h, w, 3]``: a class-coloured square moving in the class direction on a noisy background."""
    side = int(rng.integers(max(4, h // 5), max(5, h // 3)))
    y, x = rng.uniform(0, h - side), rng.uniform(0, w - side)
    dy, dx = DIRECTIONS[c % len(DIRECTIONS)]
    speed = rng.uniform(0.5, 1.5) * min(h, w) / max(n, 1)
    colour = np.clip(PALETTE[c % len(PALETTE)] + rng.normal(0, 12, 3), 0, 255)
    background = rng.uniform(20, 120)
    other = PALETTE[int(rng.integers(len(PALETTE)))] if rng.random() < 0.5 else None
    oy, ox, oside = rng.uniform(0, h - side), rng.uniform(0, w - side), max(3, side // 2)
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = np.full((h, w, 3), background, np.float32) + rng.normal(0, 6, (h, w, 3))
        if other is not None:
            img[int(oy):int(oy) + oside, int(ox):int(ox) + oside] = other
        top = int(np.clip(y + dy * speed * i, 0, h - side))
        left = int(np.clip(x + dx * speed * i, 0, w - side))
        img[top:top + side, left:left + side] = colour
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def render_audio(c: int, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """float32 mono ``[seconds * rate]``: class pitch (+-3 %) with a class rhythm, random phase and noise."""
    t = np.arange(round(seconds * rate)) / rate
    pitch = class_pitch(c) * rng.uniform(0.97, 1.03)
    rhythm = 0.5 * (1 + np.sin(2 * np.pi * (1.5 + c) * t + rng.uniform(0, 2 * np.pi)))
    wave = rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * pitch * t + rng.uniform(0, 2 * np.pi)) * rhythm
    return (wave + rng.uniform(0.005, 0.03) * rng.normal(size=t.shape)).astype(np.float32)


def _audio_frames(stream: av.audio.stream.AudioStream, wave: np.ndarray, rate: int) -> list[av.AudioFrame]:
    offered = [f.name for f in stream.codec_context.codec.audio_formats or []]
    fmt = next(f for f in ("fltp", "flt", "s16p", "s16") if f in offered)
    size = stream.codec_context.frame_size or 1024
    out = []
    for i, start in enumerate(range(0, len(wave), size)):
        chunk = wave[start:start + size]
        if fmt.startswith("s16"):
            arr = (np.clip(chunk, -1, 1) * 32767).astype(np.int16)[None, :]
        else:
            arr = chunk[None, :].astype(np.float32)
        frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, i * size
        out.append(frame)
    return out


def write_clip(path: Path, frames: np.ndarray | None, fps: int, wave: np.ndarray | None, container: str) -> None:
    """Encode ``frames`` (uint8 [T, H, W, 3]) and/or a mono ``wave`` (at ``CODECS[container][2]`` Hz)."""
    vcodec, acodec, rate = CODECS[container]
    with av.open(str(path), "w", options={"fflags": "+bitexact"}) as out:
        if frames is not None:
            vopts = {"threads": "1", "flags": "+bitexact"} | ({"preset": "ultrafast"} if vcodec == "libx264" else {})
            vs: av.VideoStream = out.add_stream(vcodec, rate=fps, options=vopts)  # type: ignore[assignment]
            # (x264 ultrafast: bit-exact run to run)
            vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if wave is not None:
            aus: av.AudioStream = out.add_stream(acodec, rate=rate, options={"flags": "+bitexact"})  # type: ignore[assignment]
            aus.layout = "mono"
        for i, img in enumerate(frames if frames is not None else []):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            out.mux(vs.encode(vf))
        if frames is not None:
            out.mux(vs.encode(None))
        if wave is not None:
            for af in _audio_frames(aus, wave, rate):
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))


def make_synthetic_dataset(out_dir: str | Path, num_classes: int = 4, clips_per_class: int = 10,
                           seconds: float = 2.0, fps: int = 8, size: int | tuple[int, int] = (48, 64),
                           containers: tuple[str, ...] = ("mp4", "mkv", "avi", "webm"), seed: int = 0,
                           test_share: float = 0.25, silent_clips: int = 1) -> Path:
    """Write ``num_classes * clips_per_class`` clips under ``out_dir`` and a ``manifest.csv``
    (``path,label,split``; paths relative to ``out_dir``, the media root). Returns the manifest path."""
    unknown = [c for c in containers if c not in CODECS or not CODECS[c][0]]
    if unknown or not containers or not 1 <= num_classes <= len(PALETTE):
        raise ValueError(f"containers from {sorted(CODECS)} and 1..{len(PALETTE)} classes, got {containers}, "
                         f"{num_classes}")
    h, w = (size, size) if isinstance(size, int) else size
    out = Path(out_dir)
    rows = []
    total = num_classes * clips_per_class
    for c in range(num_classes):
        label = f"class{c}"
        (out / label).mkdir(parents=True, exist_ok=True)
        n_test = round(clips_per_class * test_share)
        for i in range(clips_per_class):
            k = c * clips_per_class + i
            rng = np.random.default_rng([seed, c, i])
            container = containers[k % len(containers)]
            rate = CODECS[container][2]
            wave = None if k >= total - silent_clips else render_audio(c, seconds, rate, rng)
            rel = f"{label}/{label}_{i:03d}.{container}"
            write_clip(out / rel, render_frames(c, round(seconds * fps), h, w, rng), fps, wave, container)
            rows.append((rel, label, "test" if i >= clips_per_class - n_test else "train"))
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return manifest

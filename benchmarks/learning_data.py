"""A real audio-visual learning set: spoken digits (real recordings) muxed with handwritten digits (real images).

Every clip is one recording from ``../shared/data/speech_digits`` (FSDD: five speakers, 8 kHz mono) paired
with one of scikit-learn's bundled handwritten digits of the same class (``load_digits``: 1,797 8x8
scans of 43 writers), written as a real MP4 file (H.264 video, AAC audio) that the toolkit preprocesses
like any other. The task is the digit: 10 classes, heard and seen.

Splits (generic manifest ``path,label,split``):
- ``test``: every recording of one held-out speaker (default ``lucas``: 500 clips), paired with images
  from a held-out pool of writers' scans (the last 20 % of ``load_digits``): nothing of a test clip was seen
  in training, neither the voice nor the handwriting.
- ``val``: 10 % of the other speakers' recordings (stratified by digit and speaker), images from the
  training pool: model selection on seen speakers, as a user would hold out part of their data.
- ``train``: the rest (1,800 clips).

The clip is ``seconds`` long (1 s by default; a longer recording keeps its full length), the speech starts
at a random offset so that it is not always centred, and the image is shown on a grey background with a
random position and scale (70-90 % of the frame) for the whole clip (the video has ``fps`` frames per second). Deterministic for
a given seed. Nothing is downloaded; the recordings are read from ``speech_dir`` and never copied.
"""

from __future__ import annotations

import csv
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_digits"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "yweweler")


@dataclass(frozen=True)
class Recording:
    """One spoken digit: ``{digit}_{speaker}_{index}.wav``."""

    path: Path
    digit: int
    speaker: str
    index: int


def recordings(speech_dir: Path = SPEECH_DIR) -> list[Recording]:
    """Every recording in ``speech_dir``, sorted (digit, speaker, index)."""
    out = []
    for p in speech_dir.glob("*.wav"):
        digit, speaker, index = p.stem.split("_")
        out.append(Recording(p, int(digit), speaker, int(index)))
    if not out:
        raise FileNotFoundError(f"{speech_dir}: no speech_digits recordings (*.wav)")
    return sorted(out, key=lambda r: (r.digit, r.speaker, r.index))


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """float32 mono samples in [-1, 1] and the sample rate of a 16-bit PCM WAV file."""
    with wave.open(str(path), "rb") as fh:
        rate, width, channels = fh.getframerate(), fh.getsampwidth(), fh.getnchannels()
        data = fh.readframes(fh.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit PCM, got {8 * width}-bit")
    x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, channels).mean(axis=1), rate


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: uint8 ``[N, 8, 8]`` (0..255, ink bright) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * (255.0 / 16.0)).round().astype(np.uint8), d.target.astype(int)


def render_image(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB ``[size, size, 3]``: the 8x8 digit scaled to 70-90 % of the frame (bilinear) at a random
    place, dark ink on a light grey background, with a little noise (the scan is what varies: 43 writers)."""
    import torch
    import torch.nn.functional as F

    side = int(rng.integers(round(size * 0.7), round(size * 0.9) + 1))
    digit = F.interpolate(torch.from_numpy(img).float()[None, None], size=(side, side), mode="bilinear",
                          align_corners=False)[0, 0].numpy() / 255.0  # [side, side] in 0..1
    top, left = (int(rng.integers(0, size - side + 1)) for _ in range(2))
    paper = float(rng.uniform(170, 230))
    canvas = np.full((size, size), paper, np.float32)
    canvas[top:top + side, left:left + side] -= digit * (paper - float(rng.uniform(10, 60)))
    rgb = np.repeat(canvas[..., None], 3, axis=-1) + rng.normal(0, 4, (size, size, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def place_speech(speech: np.ndarray, rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The recording inside a clip of at least ``seconds`` s, starting at a random offset (quiet noise
    elsewhere, as a room would have)."""
    n = max(round(seconds * rate), len(speech))
    out = rng.normal(0, 1e-3, n).astype(np.float32)
    start = int(rng.integers(0, n - len(speech) + 1))
    out[start:start + len(speech)] += speech
    return out


def build(out_dir: str | Path, speech_dir: Path = SPEECH_DIR, test_speaker: str = "lucas", seconds: float = 1.0,
          fps: int = 8, size: int = 64, val_share: float = 0.1, per_digit: int | None = None,
          seed: int = 0) -> Path:
    """Write the clips under ``out_dir`` and ``out_dir/manifest.csv``; return the manifest path.

    ``per_digit`` keeps only the first N recordings of each (digit, speaker) (tests use a few)."""
    from zorro_cli.atomic import atomic_path
    from zorro_cli.data.synth import write_clip

    out = Path(out_dir)
    manifest = out / "manifest.csv"
    if manifest.is_file():
        return manifest
    recs = [r for r in recordings(speech_dir) if per_digit is None or r.index < per_digit]
    if test_speaker not in {r.speaker for r in recs}:
        raise ValueError(f"test speaker {test_speaker!r} not among {sorted({r.speaker for r in recs})}")
    images, targets = digit_images()
    cut = int(len(images) * 0.8)
    pools = {split: {d: np.flatnonzero(targets[lo:hi] == d) + lo for d in range(10)}
             for split, (lo, hi) in (("train", (0, cut)), ("test", (cut, len(images))))}
    rows = []
    for r in recs:
        rng = np.random.default_rng([seed, r.digit, SPEAKERS.index(r.speaker) if r.speaker in SPEAKERS else 99,
                                     r.index])
        split = "test" if r.speaker == test_speaker else "val" if rng.random() < val_share else "train"
        pool = pools["test" if split == "test" else "train"][r.digit]
        img = render_image(images[int(rng.choice(pool))], size, rng)
        speech, rate = read_wav(r.path)
        audio = place_speech(speech, rate, seconds, rng)
        frames = np.repeat(img[None], max(1, round(len(audio) / rate * fps)), axis=0)
        rel = f"{r.digit}/{r.speaker}_{r.index:02d}.mp4"
        (out / str(r.digit)).mkdir(parents=True, exist_ok=True)
        write_clip(out / rel, frames, fps, _resample(audio, rate, 16000), "mp4")
        rows.append((rel, str(r.digit), split))
    with atomic_path(manifest) as tmp, tmp.open("w", newline="") as fh:  # its presence marks a finished build
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    return manifest


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's sinc interpolation) to the MP4 writer's 16 kHz."""
    import torch
    import torchaudio.functional as AF

    if rate == target:
        return x
    return AF.resample(torch.from_numpy(x)[None], rate, target)[0].numpy().astype(np.float32)


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--per-digit", type=int, default=None)
    a = p.parse_args()
    print(build(a.out, per_digit=a.per_digit))

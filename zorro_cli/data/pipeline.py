"""One clip from media file to cacheable arrays: decode (PyAV) -> JPEG frames + float16 log-mel.

``process_clip`` is what a preprocessing worker runs. It never raises for bad input: a file that cannot
be cached comes back as a ``ClipFailure`` with a one-line reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .config import PreprocessConfig
from .decode import DecodeError, DecodeRequest, decode_media, one_line
from .features import log_mel, mel_moments
from .media import ClipTask


@dataclass
class ClipResult:
    """A decoded clip ready to be written: JPEG bytes per video slot and a float16 ``[F, T]`` log-mel."""

    task: ClipTask
    frames: list[bytes] | None
    logmel: np.ndarray | None
    duration_s: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def moments(self) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Per-bin sum / sum of squares / frame count of the stored (float16) log-mel."""
        return None if self.logmel is None else mel_moments(self.logmel)


@dataclass
class ClipFailure:
    """A clip that is not cached, with the one-line reason for ``failures.csv``."""

    task: ClipTask
    reason: str


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB uint8 ``[H, W, 3]`` image (libjpeg-turbo through Pillow; deterministic)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes | np.ndarray) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of JPEG bytes."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    with Image.open(io.BytesIO(raw)) as img:
        return np.asarray(img.convert("RGB"))


def process_clip(task: ClipTask, cfg: PreprocessConfig) -> ClipResult | ClipFailure:
    """Decode and featurise one clip; bad input gives a ``ClipFailure``, never an exception."""
    req = DecodeRequest(task.media, task.start, task.end, cfg.max_seconds, fps=cfg.fps, short_side=cfg.short_side,
                        sample_rate=cfg.sample_rate, audio="audio" in cfg.modalities,
                        video="video" in cfg.modalities, min_coverage=cfg.min_coverage, threads=cfg.decode_threads)
    try:
        decoded = decode_media(req, frame_fn=lambda rgb: encode_jpeg(rgb, cfg.jpeg_quality))
        mel = None if decoded.audio is None else log_mel(decoded.audio, cfg).astype(np.float16)
    except DecodeError as exc:
        return ClipFailure(task, str(exc))
    except Exception as exc:  # a decoder/library error not foreseen: report it, keep the run going
        return ClipFailure(task, f"unexpected {one_line(exc)}")
    if mel is not None and not np.isfinite(mel).all():
        return ClipFailure(task, "log-mel has non-finite values")
    return ClipResult(task, decoded.frames, mel, decoded.duration_s, decoded.info)

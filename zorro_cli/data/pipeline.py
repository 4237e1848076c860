"""One clip from media file to cacheable arrays: decode (PyAV) -> JPEG frames + float16 log-mel.

``process_clip`` is what a preprocessing worker runs. It never raises for bad input: a file that cannot
be cached comes back as a ``ClipFailure`` with a one-line reason.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import PreprocessConfig
from .decode import DecodeError, DecodeRequest, decode_media, one_line
from .features import log_mel, mel_moments
from .jpeg import encode_jpeg
from .media import ClipTask


@dataclass
class ClipResult:
    """A decoded clip ready to be written: JPEG bytes per video slot and a float16 ``[F, T]`` log-mel."""

    task: ClipTask
    frames: list[bytes] | None
    logmel: np.ndarray | None
    duration_s: float
    info: dict[str, Any] = field(default_factory=dict)
    # per-bin sum / sum of squares / frame count of the stored (float16) log-mel: computed where the
    # result is made (a decode worker), not in the main process that writes every worker's results
    moments: tuple[np.ndarray, np.ndarray, int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.moments = None if self.logmel is None else mel_moments(self.logmel)


@dataclass
class ClipFailure:
    """A clip that is not cached, with the one-line reason for ``failures.csv``."""

    task: ClipTask
    reason: str


class ClipTimeout(BaseException):
    """Raised inside a clip's decoding when ``clip_timeout_s`` has passed (a ``BaseException``, so that
    the decoder's own ``except Exception`` handlers, which keep partial decodes, let it through)."""


@contextlib.contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise ``ClipTimeout`` in this (main) thread after ``seconds`` of wall time (SIGALRM; POSIX).

    The signal is handled between Python steps of the decode loop (every packet), so a file that takes
    too long is stopped; a decoder stuck inside a single FFmpeg call is not interrupted by this."""
    if seconds is None or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise ClipTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def process_clip(task: ClipTask, cfg: PreprocessConfig) -> ClipResult | ClipFailure:
    """Decode and featurise one clip; bad input gives a ``ClipFailure``, never an exception."""
    try:
        with _deadline(cfg.clip_timeout_s):
            return _process_clip(task, cfg)
    except ClipTimeout:
        return ClipFailure(task, f"still decoding after clip_timeout_s = {cfg.clip_timeout_s:g} s")


def _process_clip(task: ClipTask, cfg: PreprocessConfig) -> ClipResult | ClipFailure:
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

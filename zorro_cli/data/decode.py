"""PyAV decoding: a clip window of any container FFmpeg reads -> frames at a target rate and size + mono audio.

Times come from each stream's time base (never the nominal rate), relative to the container's start
time, so that MPEG-TS clocks and edit lists line up audio and video. Video frames are resampled to
``fps`` by sample-and-hold (``HoldSampler``); only the frames that fill an output slot are converted
to RGB, resized to the short side (display aspect and rotation metadata applied). Audio is downmixed to
mono and resampled by FFmpeg's resampler. A stream that decodes less than ``min_coverage`` of its
expected span (truncated file, decode error part-way, header that lies) raises ``DecodeError``.

Frames that no output slot will show and that no other frame references are not decoded at all
(``_SkipUnneeded``): a video packet is held back until the packets after it tell its frame's successor in
presentation order; when no slot falls between the two, the decoder is asked to drop the frame if it is
a non-reference one (FFmpeg's ``skip_frame=NONREF``). The kept frames, and so the cache, are unchanged.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

EPS = 1e-6
FrameFn = Callable[[np.ndarray], Any]


class DecodeError(Exception):
    """A file (or clip window) that cannot be cached; ``str()`` is a one-line reason."""


@dataclass
class DecodeRequest:
    """What to decode: the window ``[start, end)`` in seconds, which must decode (``end=None``: to the
    end of the media, or for at most ``limit`` seconds)."""

    path: str
    start: float = 0.0
    end: float | None = None
    limit: float | None = None  # with end=None: decode at most this many seconds (a cap, not a demand)
    fps: float = 5.0
    short_side: int = 256
    sample_rate: int = 16000
    audio: bool = True
    video: bool = True
    min_coverage: float = 0.9
    threads: int = 1
    skip_unneeded: bool = True  # leave non-reference frames that fill no output slot undecoded


@dataclass
class Decoded:
    """What a window decoded to. ``frames`` hold RGB uint8 ``[H, W, 3]`` (or what ``frame_fn`` made of
    them), one entry per output slot, a held frame repeating the same object; ``audio`` is float32
    ``[N]`` at the request's rate."""

    frames: list[Any] | None = None
    audio: np.ndarray | None = None
    duration_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def one_line(exc: BaseException) -> str:
    """``ErrorName: message`` on one line, without the file name PyAV appends."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {' '.join(str(msg).split())}"[:200]


class HoldSampler:
    """Sample-and-hold resampling of frame timestamps onto the grid ``k / fps`` (k = 0, 1, ...).

    ``push(t)`` announces the next source frame's time and returns how many output slots the
    *previous* frame fills (the slots before ``t``); ``finish(t_end)`` returns the last frame's share.
    Slots before the first frame are given to the first frame.
    """

    def __init__(self, fps: float, end: float | None) -> None:
        self.fps, self.end = fps, end
        self.slot = 0
        self.started = False

    def _slots_before(self, t: float) -> int:
        if self.end is not None:
            t = min(t, self.end)
        return max(0, math.ceil(t * self.fps - EPS) - self.slot)

    def push(self, t: float) -> int:
        if not self.started:
            self.started = True
            return 0
        n = self._slots_before(t)
        self.slot += n
        return n

    def finish(self, t_end: float) -> int:
        if not self.started:
            return 0
        n = max(self._slots_before(t_end), 1 if self.slot == 0 else 0)
        self.slot += n
        return n


def output_size(width: int, height: int, sar: Fraction | None, short_side: int) -> tuple[int, int]:
    """``(w, h)`` before rotation so that the displayed short side is ``short_side`` (aspect kept)."""
    disp_w = width * float(sar) if sar and sar > 0 else float(width)
    scale = short_side / min(disp_w, height)
    return max(1, round(disp_w * scale)), max(1, round(height * scale))


def rotation_turns(rotation: float | int | None) -> int:
    """Display-matrix rotation (degrees, counter-clockwise) -> ``np.rot90`` turns; junk values -> 0."""
    if rotation is None or not math.isfinite(rotation) or abs(rotation) > 360:
        return 0
    return round(rotation / 90) % 4


def _open(path: str) -> Any:
    try:
        return av.open(path, metadata_errors="ignore")
    except Exception as exc:  # PyAV raises many types for unreadable input; all mean "cannot open"
        raise DecodeError(f"cannot open: {one_line(exc)}") from None


def pick_video_stream(container: Any) -> Any:
    """The first video stream that is not an attached picture (cover art), or None."""
    attached = int(av.stream.Disposition.attached_pic)
    for stream in container.streams.video:
        if not int(stream.disposition) & attached:
            return stream
    return None


def _stream_span(container: Any, stream: Any) -> float | None:
    """The stream's length in seconds from its header (or the container's), None when unknown."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _frame_step(stream: Any, fps: float) -> float:
    rate = stream.average_rate or stream.base_rate
    return 1.0 / float(rate) if rate and rate > 0 else 1.0 / fps


def _check_coverage(kind: str, covered: float, header_span: float | None, req: DecodeRequest, error: str) -> None:
    """Raise unless the stream decoded ``min_coverage`` of what it should: the manifest window (cut at
    the end of stream the header gives), or the header's length (capped by ``limit``) without a window."""
    cause = f" ({error})" if error else ""
    left = None if header_span is None else header_span - req.start
    expected: float | None
    if req.end is not None:
        expected = req.end - req.start if left is None else min(req.end - req.start, left)
    else:
        expected = left if left is None or req.limit is None else min(left, req.limit)
    if expected is not None and expected <= 0:
        raise DecodeError(f"clip window starts at {req.start:.3f} s, after the end of the {kind} stream "
                          f"({header_span:.3f} s)")
    if covered <= 0:
        said = f" (header says {header_span:.3f} s)" if header_span else ""
        raise DecodeError(f"no {kind} decoded{said}{cause}")
    if expected is not None and covered < req.min_coverage * expected - EPS:
        raise DecodeError(f"{kind} decoded for {covered:.3f} of {expected:.3f} s{cause}")


class _VideoTrack:
    """Consumes decoded video frames (decode order), keeps the RGB frames of the output slots."""

    def __init__(self, req: DecodeRequest, stream: Any, window: float | None, frame_fn: FrameFn | None) -> None:
        self.req, self.stream, self.window, self.frame_fn = req, stream, window, frame_fn
        self.step = _frame_step(stream, req.fps)
        # pts * float: frame.time builds a Fraction per frame
        self.time_base = float(stream.time_base) if stream.time_base else 0.0
        self.sampler = HoldSampler(req.fps, window)
        self.fifo: list[Any] = []
        self.times: list[float] = []
        self.raw_last: float | None = None
        self.pending: tuple[Any, float] | None = None
        self.frames: list[Any] = []
        self.size: tuple[int, int] | None = None
        self.start_t: float | None = None
        self.turns = 0
        self.scaler, self.to_rgb = VideoReformatter(), VideoReformatter()
        self.first_shape: tuple[int, ...] | None = None
        self.end_t = 0.0
        self.decoded = 0
        self.done = False

    def add(self, frame: Any, origin: float) -> None:
        """Queue a frame; timestamps are sorted within a few frames (AVI with packed B-frames stamps
        presentation-order frames with decode-order times)."""
        self.decoded += 1
        pts = frame.pts
        self.raw_last = pts * self.time_base if pts is not None and self.time_base else (
            0.0 if self.raw_last is None else self.raw_last + self.step)
        self.fifo.append(frame)
        heapq.heappush(self.times, self.raw_last - origin)
        if len(self.fifo) > 4:
            self._take(self.fifo.pop(0), heapq.heappop(self.times))

    def finish(self) -> None:
        while self.fifo:
            self._take(self.fifo.pop(0), heapq.heappop(self.times))
        if self.pending is not None:
            frame, t = self.pending
            dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else self.step
            self.end_t = t + dur if self.window is None else min(t + dur, self.window)
            self._emit(frame, t, self.sampler.finish(t + dur))
            self.pending = None

    def _take(self, frame: Any, t: float) -> None:
        if self.done:
            return
        if self.window is not None and t >= self.window - EPS:
            self.done = True
            if self.pending is not None:
                self.end_t = self.window
                self._emit(*self.pending, self.sampler.finish(self.window))
                self.pending = None
            return
        n = self.sampler.push(max(t, 0.0))
        if self.pending is not None:
            self._emit(*self.pending, n)
        self.pending = (frame, t)

    def _emit(self, frame: Any, t: float, n: int) -> None:
        if n <= 0:
            return
        if self.start_t is None:
            self.start_t = max(t, 0.0)
        if self.size is None:
            self.size = output_size(frame.width, frame.height, self.stream.sample_aspect_ratio, self.req.short_side)
            self.turns = rotation_turns(getattr(frame, "rotation", 0))
        w, h = self.size
        # Scale in the source pixel format, then convert to RGB at the small size: 2-5x cheaper than
        # swscale's combined path. Each step keeps one swscale context for the whole clip (PyAV's
        # frame.to_ndarray builds one per frame, which at 1080p costs more than decoding the frame).
        small = self.scaler.reformat(frame, width=w, height=h, interpolation="BILINEAR", threads=self.req.threads)
        rgb: np.ndarray = self.to_rgb.reformat(small, format="rgb24", threads=self.req.threads).to_ndarray()
        if self.turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, self.turns))
        if self.first_shape is None:
            self.first_shape = rgb.shape
        item = rgb if self.frame_fn is None else self.frame_fn(rgb)  # e.g. JPEG now: memory stays small
        self.frames.extend([item] * n)

    def covered(self) -> float:
        return max(0.0, self.end_t - (self.start_t or 0.0)) if self.frames else 0.0


class _SkipUnneeded:
    """Per video packet (decode order): decode its frame, or let the decoder drop it when it is a
    non-reference frame that fills no output slot.

    A packet waits until ``LOOKAHEAD`` later packets are known (more than any codec's reordering depth),
    so that the next presentation time after its own is known. Its frame at ``t`` holds the slots in
    ``[t, t_next)`` (``HoldSampler``); it is needed when a slot falls there (with a margin), when it is
    the earliest frame known (it also holds the slots before it), when no later frame is known, or when
    it lies past the window (the track's end bookkeeping reads it). Every doubt decodes: a wrong
    successor can only be a later one, which widens the interval. Not used where packet times are not
    presentation times (AVI stamps packed B-frames in decode order) or with frame threads.
    """

    LOOKAHEAD = 24
    MARGIN = 1e-3

    def __init__(self, stream: Any, fps: float, window: float | None) -> None:
        self.cc, self.fps, self.window = stream.codec_context, fps, window
        self.time_base = float(stream.time_base)
        self.pts: list[int] = []  # every video packet pts so far, sorted
        self.queue: deque[Any] = deque()
        self.mode = "DEFAULT"

    def push(self, packet: Any, hold: bool = True) -> Iterator[Any]:
        """Queue ``packet``; yields the packets now ready to decode, in decode order (all of them when
        not ``hold``ing, e.g. until the first frame has given the time origin)."""
        if packet.pts is not None:
            bisect.insort(self.pts, packet.pts)
        self.queue.append(packet)
        while len(self.queue) > (self.LOOKAHEAD if hold else 0):
            yield self.queue.popleft()

    def drain(self) -> Iterator[Any]:
        while self.queue:
            yield self.queue.popleft()

    def prepare(self, packet: Any, offset: float | None) -> None:
        """Set the decoder's skip mode for ``packet``; ``offset``: the track's time origin (None: not yet
        known, decode)."""
        mode = "DEFAULT" if offset is None or self.needed(packet.pts, offset) else "NONREF"
        if mode != self.mode:
            self.cc.skip_frame = self.mode = mode

    def needed(self, pts: int | None, offset: float) -> bool:
        if pts is None:
            return True
        lo, hi = bisect.bisect_left(self.pts, pts), bisect.bisect_right(self.pts, pts)
        if lo == 0 or hi == len(self.pts):  # earliest known frame, or no successor known
            return True
        t, t_next = pts * self.time_base - offset, self.pts[hi] * self.time_base - offset
        if self.window is not None and t >= self.window - self.MARGIN:
            return True
        first_slot = max(0, math.ceil((t - self.MARGIN) * self.fps)) / self.fps
        return first_slot < t_next + self.MARGIN and (self.window is None or first_slot < self.window + self.MARGIN)


def _samples(frame: Any) -> np.ndarray:
    """float32 ``[N]`` view of a packed mono ``flt`` frame (``to_ndarray`` stacks planes: slower)."""
    return np.frombuffer(frame.planes[0], dtype=np.float32, count=frame.samples)


class _AudioTrack:
    """Consumes decoded audio frames, keeps the mono samples of the window (contiguous from the first)."""

    def __init__(self, req: DecodeRequest, window: float | None) -> None:
        self.rate = req.sample_rate
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=req.sample_rate)
        self.limit = None if window is None else round(window * req.sample_rate)
        self.pos: int | None = None  # window sample index of the next resampled sample
        self.first = 0
        self.chunks: list[np.ndarray] = []
        self.done = False

    def add(self, frame: Any, origin: float) -> None:
        if self.pos is None:
            t = float(frame.time) - origin if frame.time is not None else 0.0
            self.pos = round(t * self.rate)
            self.first = max(self.pos, 0)
        for out in self.resampler.resample(frame):
            self._take(_samples(out))

    def finish(self) -> None:
        if self.pos is not None and not self.done:
            for out in self.resampler.resample(None):
                self._take(_samples(out))

    def _take(self, data: np.ndarray) -> None:
        assert self.pos is not None
        lo = max(0, -self.pos)
        hi = len(data) if self.limit is None else min(len(data), self.limit - self.pos)
        if hi > lo:
            self.chunks.append(data[lo:hi])
        self.pos += len(data)
        if self.limit is not None and self.pos >= self.limit:
            self.done = True

    def samples(self) -> np.ndarray:
        """The window's samples; a late first sample (stream starting after the window) is preceded by
        silence so that sample ``i`` stays at time ``i / rate`` like the video slots."""
        if not self.chunks:
            return np.zeros(0, np.float32)
        return np.concatenate([np.zeros(self.first, np.float32), *self.chunks]).astype(np.float32)


def decode_media(req: DecodeRequest, frame_fn: FrameFn | None = None) -> Decoded:
    """Decode ``req.path`` over its window; raises ``DecodeError`` (one-line reason) when it cannot.

    ``frame_fn`` maps each output RGB frame as soon as it is made (e.g. to JPEG bytes), so a long clip
    never holds all its RGB frames; ``Decoded.frames`` then holds what it returns."""
    container = _open(req.path)
    try:
        return _decode(container, req, frame_fn)
    except _DecodeAgainInFull:
        pass
    finally:
        container.close()
    return decode_media(dataclasses.replace(req, skip_unneeded=False), frame_fn)


class _DecodeAgainInFull(Exception):
    """A stream broke part-way while frames were being skipped: how much decoded depends on which frames
    were skipped before the break, so the file is decoded again without skipping (rare), to keep and report
    exactly what a full decode does."""


def _decode(container: Any, req: DecodeRequest, frame_fn: FrameFn | None) -> Decoded:
    vstream = pick_video_stream(container) if req.video else None
    astream = container.streams.audio[0] if req.audio and container.streams.audio else None
    if vstream is None and astream is None:
        wanted = " or ".join(k for k, on in (("audio", req.audio), ("video", req.video)) if on)
        raise DecodeError(f"no {wanted} stream")
    window = req.limit if req.end is None else req.end - req.start
    if window is not None and window <= 0:
        raise DecodeError(f"empty clip window {req.start:.3f}-{req.end} s")
    origin = container.start_time / av.time_base if container.start_time is not None else None
    seeked = req.start > 0.5 and _seek(container, req.start + (origin or 0.0))
    if seeked and origin is None:
        origin = 0.0
    video = _VideoTrack(req, vstream, window, frame_fn) if vstream is not None else None
    audio = _AudioTrack(req, window) if astream is not None else None
    if vstream is not None:
        vstream.thread_type = "AUTO"
        vstream.codec_context.thread_count = req.threads
    skipper = (_SkipUnneeded(vstream, req.fps, window) if vstream is not None and req.skip_unneeded
               and req.threads == 1 and "avi" not in container.format.name.split(",") else None)
    error, first = "", True

    def decode(packet: Any) -> None:
        nonlocal origin, first
        track: Any = video if packet.stream is vstream else audio
        if skipper is not None and track is video:
            skipper.prepare(packet, None if first or origin is None else origin + req.start)
        for frame in packet.decode():
            if first:
                if origin is None or (not seeked and frame.time is not None and frame.time < origin):
                    origin = float(frame.time) if frame.time is not None else 0.0  # headers that lie
                first = False
            assert origin is not None  # set by the first frame
            track.add(frame, origin + req.start)

    try:
        for packet in container.demux([s for s in (vstream, astream) if s is not None]):
            if skipper is not None and packet.stream is vstream:
                for ready in skipper.push(packet, hold=not first):
                    decode(ready)
            else:
                decode(packet)
            if (video is None or video.done) and (audio is None or audio.done):
                break
        else:
            for ready in skipper.drain() if skipper is not None else ():
                decode(ready)
    except Exception as exc:  # a decode error part-way: keep what decoded, coverage decides
        if skipper is not None:
            raise _DecodeAgainInFull from exc
        error = one_line(exc)
    return _result(container, req, vstream, astream, video, audio, error)


def _seek(container: Any, t: float) -> bool:
    """Seek to the keyframe at or before ``t`` seconds (container clock); False when the demuxer cannot."""
    try:
        container.seek(int(t * av.time_base), backward=True, any_frame=False)
        return True
    except Exception:
        return False


def _result(container: Any, req: DecodeRequest, vstream: Any, astream: Any,
            video: _VideoTrack | None, audio: _AudioTrack | None, error: str) -> Decoded:
    out = Decoded(info={"container": container.format.name, "decode_error": error})
    if video is not None:
        video.finish()
        _check_coverage("video", video.covered(), _stream_span(container, vstream), req, error)
        out.frames = video.frames
        h, w = video.first_shape[:2]  # type: ignore[index]
        out.info.update(video_codec=vstream.codec_context.name, source_size=[vstream.width, vstream.height],
                        source_fps=float(vstream.average_rate or 0), rotation_turns=video.turns,
                        frames_decoded=video.decoded, size=[w, h])
    if audio is not None:
        audio.finish()
        out.audio = audio.samples()
        _check_coverage("audio", (len(out.audio) - audio.first) / req.sample_rate,
                        _stream_span(container, astream), req, error)
        out.info.update(audio_codec=astream.codec_context.name, source_rate=astream.rate,
                        source_channels=astream.channels)
    if video is not None:
        out.info["video_s"] = round(video.end_t, 6)
    if audio is not None:
        out.info["audio_s"] = round(len(out.audio) / req.sample_rate, 6)  # type: ignore[arg-type]
    out.duration_s = max(out.info.get("video_s", 0.0), out.info.get("audio_s", 0.0))
    return out

"""Evaluation views of one clip: K temporal windows x 1 or 3 spatial crops, no randomness.

Legend: F mel bins, A audio frames, T video frames, S image size, V views (clips x crops).
Shared by ``ClipDataset`` (clips read from a cache) and ``zorro predict`` (clips decoded from a media
file by the cache's own pipeline), so that both feed a model the same tensors for the same clip.

Time: log-mel frame ``j`` is at ``j / audio_rate`` s and video slot ``k`` at ``k / fps`` s; every window
of a clip is centred on one of :func:`zorro_cli.data.augment.eval_centers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from . import augment as aug

FrameReader = Callable[[list[int]], np.ndarray]  # slot indices -> uint8 [N, H, W, 3] (repeats allowed)


def window_span(modalities: Sequence[str], audio_frames: int, audio_rate: float, frames: int, frame_stride: int,
                fps: float) -> float:
    """Seconds a view covers: the longer of the audio and the video window among ``modalities``."""
    spans = []
    if "audio" in modalities:
        spans.append(audio_frames / audio_rate)
    if "video" in modalities:
        spans.append(frames * frame_stride / fps)
    return max(spans)


def crops_for(modalities: Sequence[str], crops: int) -> int:
    """Spatial crops per window that are worth computing: ``crops`` when video is read; 1 for audio alone,
    whose crops would be identical copies (the same scores, three times the work)."""
    return crops if "video" in modalities else 1


def audio_views(mel: torch.Tensor, centers: Sequence[float], audio_rate: float, length: int,
                crops: int) -> torch.Tensor:
    """Normalised log-mel ``[F, A_clip]`` -> ``[V, 1, F, A]``: one window per centre, repeated for each
    spatial crop (the audio of a view does not depend on its crop)."""
    windows = []
    for c in centers:
        start = aug.window_start(c, audio_rate, length, mel.shape[1])
        windows.append(aug.fit_length(mel[:, start:start + length], length).unsqueeze(0))  # [1, F, A]
    return torch.stack([w for w in windows for _ in range(crops)])


def video_views(read: FrameReader, n_frames: int, centers: Sequence[float], fps: float, frames: int,
                frame_stride: int, size: tuple[int, int], crops: int) -> torch.Tensor:
    """``[V, 3, T, S, S]``: for each centre the window's frames, cut into ``crops`` squares.

    Every stored frame that any window uses is read (and JPEG-decoded) once, in one ``read`` call, however
    many windows and crops use it."""
    span = frames * frame_stride
    windows = [aug.frame_indices(aug.window_start(c, fps, span, n_frames), frames, frame_stride, n_frames)
               for c in centers]
    needed = sorted({i for w in windows for i in w})
    position = {slot: k for k, slot in enumerate(needed)}
    stored = torch.from_numpy(read(needed)).permute(0, 3, 1, 2)  # [N, 3, H, W]
    h, w = stored.shape[-2:]
    boxes = aug.eval_boxes(h, w, crops)
    views = []
    for window in windows:
        clip = stored[[position[i] for i in window]]  # [T, 3, H, W]
        # the crops of a window resized in one call: [crops * T, 3, S, S] (each image on its own, as one by one)
        cut = torch.cat([clip[:, :, top:top + ch, left:left + cw] for top, left, ch, cw in boxes])
        views.append(aug.crop_resize(cut, (0, 0, *cut.shape[-2:]), size).unflatten(0, (crops, frames)))
    return normalize_views(torch.cat(views))


def normalize_views(x: torch.Tensor) -> torch.Tensor:
    """float ``[V, T, 3, S, S]`` in 0..255 -> ImageNet-normalised ``[V, 3, T, S, S]`` (in place, one copy:
    what :func:`zorro_cli.data.augment.normalize_video` does per view)."""
    mean = torch.tensor(aug.IMAGENET_MEAN).view(1, 1, 3, 1, 1) * 255
    std = torch.tensor(aug.IMAGENET_STD).view(1, 1, 3, 1, 1) * 255
    return x.sub_(mean).div_(std).transpose(1, 2).contiguous()

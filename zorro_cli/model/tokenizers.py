"""Patch tokenizers with learned position embeddings that interpolate to other input sizes.

Legend: B batch, F mel bins, T time (spectrogram frames or video frames), H/W image height/width,
D width; a trailing ``p`` means "in patches" (Fp = F / patch height, ...).

Audio: log-mel ``[B, 1, F, T]`` -> 2D conv with a 16x16 kernel and stride -> ``[B, Fp*Tp, D]``
(frequency-major, as AST), plus a learned ``[D, Fp, Tp]`` table.
Video: frames ``[B, 3, T, H, W]`` -> 3D conv with a ``(t, 16, 16)`` kernel and stride (t = 1 by default,
i.e. per-frame ViT patches) -> ``[B, Tp*Hp*Wp, D]`` (time-major), plus a factorised position embedding:
a spatial ``[D, Hp, Wp]`` table (what a ViT checkpoint provides) and a temporal ``[D, Tp]`` table.

When an input's grid differs from the configured one, the tables are resized (bicubic in space and
frequency/time, linear in video time) so that another number of frames, another image size or another
spectrogram length works without retraining. Sizes that are not a multiple of the patch raise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _trunc_normal(*shape: int) -> nn.Parameter:
    p = nn.Parameter(torch.empty(*shape))
    nn.init.trunc_normal_(p, std=0.02)
    return p


def resize_2d(table: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a ``[1, D, h, w]`` position table to ``size`` (bicubic); a no-op at the same size."""
    if tuple(table.shape[-2:]) == tuple(size):
        return table
    return F.interpolate(table, size=size, mode="bicubic", align_corners=False)


def resize_1d(table: Tensor, size: int) -> Tensor:
    """Resize a ``[1, D, t]`` position table to ``size`` (linear); a no-op at the same size."""
    if table.shape[-1] == size:
        return table
    return F.interpolate(table, size=size, mode="linear", align_corners=False)


def _grid(name: str, shape: tuple[int, ...], patch: tuple[int, ...], axes: tuple[str, ...]) -> tuple[int, ...]:
    bad = [f"{a}={n} (patch {p})" for a, n, p in zip(axes, shape, patch, strict=True) if n % p or n < p]
    if bad:
        raise ValueError(f"{name} input {tuple(shape)} is not a whole number of patches: {', '.join(bad)}")
    return tuple(n // p for n, p in zip(shape, patch, strict=True))


class AudioTokenizer(nn.Module):
    """Log-mel spectrogram ``[B, 1, F, T]`` -> audio tokens ``[B, Fp*Tp, D]`` with position embeddings."""

    def __init__(self, dim: int, n_mels: int, frames: int, patch: tuple[int, int] = (16, 16)) -> None:
        super().__init__()
        self.patch: tuple[int, int] = (int(patch[0]), int(patch[1]))
        fp, tp = _grid("audio", (n_mels, frames), self.patch, ("mel bins", "frames"))
        self.grid: tuple[int, int] = (fp, tp)
        self.proj = nn.Conv2d(1, dim, kernel_size=self.patch, stride=self.patch)
        self.pos = _trunc_normal(1, dim, *self.grid)  # [1,D,Fp,Tp]

    def input_grid(self, audio: Tensor) -> tuple[int, ...]:
        """Patch grid ``(Fp, Tp)`` of an input; raises on a malformed shape."""
        if audio.ndim != 4 or audio.shape[1] != 1:
            raise ValueError(f"audio must be [B, 1, F, T], got {tuple(audio.shape)}")
        return _grid("audio", tuple(audio.shape[2:]), self.patch, ("mel bins", "frames"))

    def forward(self, audio: Tensor) -> Tensor:  # [B,1,F,T] -> [B,Fp*Tp,D]
        fp, tp = self.input_grid(audio)
        x = self.proj(audio) + resize_2d(self.pos, (fp, tp))  # [B,D,Fp,Tp]
        return x.flatten(2).transpose(1, 2)


class VideoTokenizer(nn.Module):
    """Frames ``[B, 3, T, H, W]`` -> video tokens ``[B, Tp*Hp*Wp, D]`` with position embeddings."""

    def __init__(self, dim: int, frames: int, image_size: tuple[int, int],
                 patch: tuple[int, int, int] = (1, 16, 16)) -> None:
        super().__init__()
        self.patch: tuple[int, int, int] = (int(patch[0]), int(patch[1]), int(patch[2]))
        t, h, w = _grid("video", (frames, *image_size), self.patch, ("frames", "height", "width"))
        self.grid: tuple[int, int, int] = (t, h, w)
        self.proj = nn.Conv3d(3, dim, kernel_size=self.patch, stride=self.patch)
        self.pos_space = _trunc_normal(1, dim, h, w)  # [1,D,Hp,Wp]
        self.pos_time = _trunc_normal(1, dim, t)  # [1,D,Tp]

    def input_grid(self, video: Tensor) -> tuple[int, ...]:
        """Patch grid ``(Tp, Hp, Wp)`` of an input; raises on a malformed shape."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be [B, 3, T, H, W], got {tuple(video.shape)}")
        return _grid("video", tuple(video.shape[2:]), self.patch, ("frames", "height", "width"))

    def forward(self, video: Tensor) -> Tensor:  # [B,3,T,H,W] -> [B,Tp*Hp*Wp,D]
        tp, hp, wp = self.input_grid(video)
        pos = resize_2d(self.pos_space, (hp, wp)).unsqueeze(2) + resize_1d(self.pos_time, tp)[..., None, None]
        x = self.proj(video) + pos  # [B,D,Tp,Hp,Wp]
        return x.flatten(2).transpose(1, 2)

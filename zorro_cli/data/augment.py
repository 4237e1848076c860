"""Pure, seeded augmentation and view sampling. Every random function takes a ``torch.Generator``.

Legend: F mel bins, A audio frames, T video frames, C channels, H/W height/width, B batch, V views.
Training: random temporal window (audio and video centred on the same instant), random resized crop +
horizontal flip (one box for all frames of a clip), SpecAugment time/frequency masks, frequency jitter
(shift of the mel axis by a few bins [choice]), optional mixup. Evaluation: K evenly spaced temporal
windows x 3 spatial crops along the long side, no randomness.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import AugmentConfig

MIXUP_STREAM = 1  # ``item_generator`` stream of a batch's mixup draw (not the first clip's augmentation)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


NO_AUGMENT = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=0.0, freq_masks=0, time_masks=0,
                           freq_jitter=0.0)


def item_generator(seed: int, epoch: int, index: int, stream: int = 0) -> torch.Generator:
    """A generator that is a pure function of ``(seed, epoch, index)`` (independent of workers). Another
    ``stream`` gives an independent generator for the same item (stream 0 is the clip's augmentation)."""
    entropy = [seed & 0xFFFFFFFF, epoch, index] + ([stream] if stream else [])
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def uniform(g: torch.Generator) -> float:
    """One float in [0, 1)."""
    return float(torch.rand((), generator=g))


def randint(lo: int, hi: int, g: torch.Generator) -> int:
    """One int in [lo, hi] (inclusive)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


# --- time ------------------------------------------------------------------------------------------


def random_center(duration: float, span: float, g: torch.Generator) -> float:
    """Centre (s) of a window of ``span`` s placed uniformly inside ``duration`` s (mid-clip if shorter)."""
    room = max(0.0, duration - span)
    return min(span, duration) / 2 + uniform(g) * room


def eval_centers(duration: float, span: float, k: int) -> list[float]:
    """Centres of ``k`` evenly spaced windows of ``span`` s covering ``duration`` s (first to last)."""
    room = max(0.0, duration - span)
    if k == 1:
        return [duration / 2]
    return [min(span, duration) / 2 + i * room / (k - 1) for i in range(k)]


def window_start(center: float, rate: float, length: int, available: int) -> int:
    """First index of ``length`` samples at ``rate``/s centred on ``center`` s, kept inside ``available``."""
    start = round(center * rate - length / 2)
    return max(0, min(start, available - length))


def frame_indices(start: int, count: int, stride: int, available: int) -> list[int]:
    """``count`` frame indices from ``start`` every ``stride``; past the end the last frame is held."""
    return [min(start + i * stride, available - 1) for i in range(count)]


# --- video -----------------------------------------------------------------------------------------


def random_resized_box(h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
                       g: torch.Generator) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a random crop (torchvision's RandomResizedCrop sampling)."""
    area = h * w
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * (scale[0] + uniform(g) * (scale[1] - scale[0]))
        aspect = math.exp(log_lo + uniform(g) * (log_hi - log_lo))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return randint(0, h - ch, g), randint(0, w - cw, g), ch, cw
    side = min(h, w)  # fallback: the central square
    return (h - side) // 2, (w - side) // 2, side, side


def eval_boxes(h: int, w: int, crops: int) -> list[tuple[int, int, int, int]]:
    """``crops`` (1 or 3) squares of the short side: centre, or start/centre/end of the long side."""
    side = min(h, w)
    offsets = [(max(h, w) - side) // 2] if crops == 1 else [0, (max(h, w) - side) // 2, max(h, w) - side]
    return [(o, 0, side, side) if h > w else (0, o, side, side) for o in offsets]


def crop_resize(frames: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """uint8/float ``[T, C, H, W]`` -> float ``[T, C, size]`` of the box (bilinear, antialiased)."""
    top, left, ch, cw = box
    x = frames[:, :, top:top + ch, left:left + cw].float()
    if (ch, cw) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def normalize_video(frames: torch.Tensor) -> torch.Tensor:
    """float ``[T, 3, H, W]`` in 0..255 -> ImageNet-normalised ``[3, T, H, W]``."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    return ((frames - mean) / std).permute(1, 0, 2, 3).contiguous()


# --- audio -----------------------------------------------------------------------------------------


def fit_length(mel: torch.Tensor, length: int) -> torch.Tensor:
    """``[F, A]`` -> ``[F, length]``: longer is cut, shorter padded with 0 (the normalised mean)."""
    if mel.shape[-1] >= length:
        return mel[..., :length]
    return F.pad(mel, (0, length - mel.shape[-1]))


def spec_augment(mel: torch.Tensor, g: torch.Generator, freq_masks: int, freq_width: int, time_masks: int,
                 time_width: int, fill: float = 0.0) -> torch.Tensor:
    """SpecAugment on ``[F, A]``: masks of width U{0..width} at uniform positions, set to ``fill``."""
    out = mel.clone()
    n_f, n_t = out.shape[-2:]
    for count, width, size, axis in ((freq_masks, freq_width, n_f, -2), (time_masks, time_width, n_t, -1)):
        for _ in range(count):
            w = randint(0, min(width, size), g)
            start = randint(0, size - w, g)
            if axis == -2:
                out[..., start:start + w, :] = fill
            else:
                out[..., start:start + w] = fill
    return out


def freq_shift(mel: torch.Tensor, shift: int) -> torch.Tensor:
    """Shift ``[F, A]`` along the mel axis by ``shift`` bins (up = positive), repeating the edge bin."""
    if shift == 0:
        return mel
    n = mel.shape[-2]
    idx = (torch.arange(n) - shift).clamp(0, n - 1)
    return mel[..., idx, :]


def freq_jitter(mel: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Frequency jitter [choice]: a random ``freq_shift`` of -max_shift..max_shift bins."""
    return freq_shift(mel, randint(-max_shift, max_shift, g)) if max_shift > 0 else mel


# --- batch -----------------------------------------------------------------------------------------


def mixup_batch(batch: dict, alpha: float, g: torch.Generator, num_classes: int) -> dict:
    """Mixup of a collated batch with its reverse: ``x = lam x + (1 - lam) x.flip(0)``, labels as soft
    targets ``[B, C]`` (class indices are one-hot encoded, -1 = unlabelled -> zeros)."""
    if alpha <= 0:
        return batch
    lam = float(np.random.default_rng(randint(0, 2**31 - 1, g)).beta(alpha, alpha))
    out = dict(batch)
    for key in ("audio", "video"):
        if key in batch:
            out[key] = lam * batch[key] + (1 - lam) * batch[key].flip(0)
    label = batch["label"]
    if label.dtype == torch.long:
        label = F.one_hot(label.clamp(min=0), num_classes).float() * (label >= 0).unsqueeze(-1)
    out["label"] = lam * label + (1 - lam) * label.flip(0)
    out["mixup_lambda"] = torch.tensor(lam)
    return out

"""Options of the Swin and HiP backbones: read from ``ZorroConfig.extra``, derived, validated (pure).

``extra`` stays sparse (what the user set); everything left out is derived from ``dim`` (the output
width: the last stage/level's width), ``depth`` (the number of self-attention blocks, summed over the
stages/levels) and ``fusion_tokens``, so ``ZorroConfig(backbone="swin")`` alone is valid and a preset's
``depth``/``dim`` can be overridden. Widths double from one stage/level to the next and every attention
head is 32 wide, as in Swin and HiP [paper: Swin, HiP]. Problems are ``key: what is wrong`` strings.

Swin (``extra`` keys): ``stages`` (4), ``embed_dim`` (``dim / 2**(stages-1)``), ``depths`` (2 blocks
in every stage but the third, which takes the rest: Swin-T 2-2-6-2 at depth 12, Swin-B 2-2-18-2 at
depth 24), ``head_dim`` (32), ``audio_window`` (8, 10) over (Fp, Tp), ``video_window`` (8, 7, 7) over
(Tp, Hp, Wp) [paper: Video Swin's window; the audio window is a choice that tiles 32x160 at every stage].

HiP (``extra`` keys): ``levels`` (3), ``widths`` (doubling up to ``dim``), ``depths`` (latent
self-attention layers per level: 2 at every level but the last, which takes the rest: HiP-16's 2-2-18 at
depth 22), ``head_dim`` (32), ``audio_groups`` / ``video_groups`` (16-4-1, HiP-16's grouping),
``latents`` per group (128, 256, 256, HiP-16's), ``fusion_latents`` (``fusion_tokens`` at every level).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

SWIN_KEYS: tuple[str, ...] = ("stages", "embed_dim", "depths", "head_dim", "audio_window", "video_window")
HIP_KEYS: tuple[str, ...] = ("levels", "widths", "depths", "head_dim", "audio_groups", "video_groups",
                             "latents", "fusion_latents")
OPTION_KEYS: dict[str, tuple[str, ...]] = {"vit": (), "swin": SWIN_KEYS, "hip": HIP_KEYS}


class ShapeConfig(Protocol):
    """The fields of ``ZorroConfig`` the options derive from (no import: config.py imports this module)."""

    @property
    def backbone(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def fusion_tokens(self) -> int: ...
    @property
    def extra(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SwinOptions:
    """Resolved Swin options: per-stage widths, block counts and heads; windows per modality."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    audio_window: tuple[int, ...]
    video_window: tuple[int, ...]


@dataclass(frozen=True)
class HiPOptions:
    """Resolved HiP options, one entry per level."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    audio_groups: tuple[int, ...]
    video_groups: tuple[int, ...]
    latents: tuple[int, ...]
    fusion_latents: tuple[int, ...]


class _Reader:
    """Reads typed values from ``extra``, collecting ``extra.key: problem`` strings."""

    def __init__(self, extra: Mapping[str, Any], backbone: str) -> None:
        self.extra, self.problems = extra, []
        valid = OPTION_KEYS[backbone]
        for key in extra:
            if key not in valid:
                near = difflib.get_close_matches(str(key), valid, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else (
                    f"; expected one of {', '.join(valid)}" if valid else "")
                self.problems.append(f"extra.{key}: not an option of backbone {backbone!r}{hint}")

    def integer(self, key: str, default: int) -> int:
        v = self.extra.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            self.problems.append(f"extra.{key}: expected a positive integer, got {v!r}")
            return default
        return v

    def integers(self, key: str, default: tuple[int, ...], length: int) -> tuple[int, ...]:
        v = self.extra.get(key, default)
        ok = isinstance(v, list | tuple) and len(v) == length and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in v)
        if not ok:
            self.problems.append(f"extra.{key}: expected {length} positive integers, got {v!r}")
            return default
        return tuple(v)


def _split_depth(depth: int, n: int, fat: int) -> tuple[int, ...]:
    """``depth`` blocks over ``n`` stages: 2 each, stage ``fat`` takes the rest (>= 1)."""
    return tuple(max(depth - 2 * (n - 1), 1) if i == fat else 2 for i in range(n))


def _widths_heads(r: _Reader, widths: tuple[int, ...], head_dim: int) -> tuple[int, ...]:
    for w in widths:
        if w % head_dim:
            r.problems.append(f"extra.head_dim: width {w} is not divisible by head_dim {head_dim}")
            return tuple(1 for _ in widths)
    return tuple(w // head_dim for w in widths)


def _check_depth(r: _Reader, cfg: ShapeConfig, depths: tuple[int, ...], unit: str) -> None:
    if "depths" in cfg.extra:
        if sum(depths) != cfg.depth:
            r.problems.append(f"depth: {cfg.depth} is not the sum of extra.depths {list(depths)} "
                              f"({sum(depths)}); leave extra.depths out to derive it from depth")
    elif cfg.depth < 2 * (len(depths) - 1) + 1:
        r.problems.append(f"depth: {cfg.depth} is too small for {len(depths)} {unit}s "
                          f"(2 blocks per {unit}, one {unit} takes the rest); need >= {2 * len(depths) - 1}")


def _first_width(r: _Reader, cfg: ShapeConfig, key: str, n: int) -> int:
    if key in cfg.extra:
        return r.integer(key, 1)
    if cfg.dim % 2 ** (n - 1):
        r.problems.append(f"dim: {cfg.dim} is not divisible by 2**{n - 1} (the widths double {n - 1} times); "
                          f"set extra.{key}")
    return max(cfg.dim // 2 ** (n - 1), 1)


def resolve_swin(cfg: ShapeConfig) -> tuple[SwinOptions, list[str]]:
    """Swin options of ``cfg`` (derived where ``extra`` is silent) and the problems found."""
    r = _Reader(cfg.extra, "swin")
    default_n = len(cfg.extra["depths"]) if isinstance(cfg.extra.get("depths"), list | tuple) else 4
    n = r.integer("stages", default_n)
    if "depths" in cfg.extra and "stages" in cfg.extra and n != default_n:
        r.problems.append(f"extra.stages: {n} does not match the {default_n} entries of extra.depths")
    depths = r.integers("depths", _split_depth(cfg.depth, n, min(2, n - 1)), n)
    _check_depth(r, cfg, depths, "stage")
    embed = _first_width(r, cfg, "embed_dim", n)
    widths = tuple(embed * 2**i for i in range(n))
    heads = _widths_heads(r, widths, r.integer("head_dim", 32))
    audio = r.integers("audio_window", (8, 10), 2)
    video = r.integers("video_window", (8, 7, 7), 3)
    return SwinOptions(widths, depths, heads, audio, video), r.problems


def resolve_hip(cfg: ShapeConfig) -> tuple[HiPOptions, list[str]]:
    """HiP options of ``cfg`` (derived where ``extra`` is silent) and the problems found."""
    r = _Reader(cfg.extra, "hip")
    n = r.integer("levels", 3)
    depths = r.integers("depths", _split_depth(cfg.depth, n, n - 1), n)
    _check_depth(r, cfg, depths, "level")
    if "widths" in cfg.extra:
        widths = r.integers("widths", tuple(cfg.dim // 2 ** (n - 1 - i) for i in range(n)), n)
    else:
        first = _first_width(r, cfg, "widths", n)
        widths = tuple(first * 2**i for i in range(n))
    heads = _widths_heads(r, widths, r.integer("head_dim", 32))
    pyramid = tuple(4 ** (n - 1 - i) for i in range(n))
    audio = r.integers("audio_groups", pyramid, n)
    video = r.integers("video_groups", pyramid, n)
    latents = r.integers("latents", (128,) + (256,) * (n - 1), n)
    fusion = r.integers("fusion_latents", (max(cfg.fusion_tokens, 1),) * n, n)
    for name, groups in (("audio_groups", audio), ("video_groups", video)):
        for i in range(n - 1):
            if groups[i] * latents[i] < groups[i + 1]:
                r.problems.append(f"extra.{name}: level {i + 2} has {groups[i + 1]} groups but level {i + 1} "
                                  f"gives only {groups[i] * latents[i]} latents")
    return HiPOptions(widths, depths, heads, audio, video, latents, fusion), r.problems


def config_grids(cfg: Any) -> dict[str, tuple[int, ...]]:
    """Patch grids of the configured input shapes: ``{'audio': (Fp, Tp), 'video': (Tp, Hp, Wp)}``."""
    audio = (cfg.n_mels // cfg.audio_patch[0], cfg.audio_frames // cfg.audio_patch[1])
    video = (cfg.frames // cfg.video_patch[0], cfg.image_size[0] // cfg.video_patch[1],
             cfg.image_size[1] // cfg.video_patch[2])
    return {"audio": audio, "video": video}

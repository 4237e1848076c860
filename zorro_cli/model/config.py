"""``ZorroConfig``: every shape and option of a Zorro model, validated, JSON round-trippable."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .masks import MASKINGS
from .registry import backbone_names, backbone_spec

BACKBONES: tuple[str, ...] = backbone_names()
ATTENTION_IMPLS: tuple[str, ...] = ("block", "dense", "flex")


def _plain(x: Any) -> Any:
    """Tuples -> lists, recursively: ``extra`` compares equal after a JSON round trip."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return [_plain(v) for v in x] if isinstance(x, list | tuple) else x


def _pair(x: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    return (int(x), int(x)) if isinstance(x, int) else (int(x[0]), int(x[1]))


class ConfigError(ValueError):
    """An impossible ``ZorroConfig``; ``problems`` are its ``key: what is wrong`` strings (a problem may
    itself contain '; ', so callers read the list, not the message)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid ZorroConfig: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ZorroConfig:
    """Shapes and options of a Zorro model. Paper values are the ViT-B/16 ones (see ``presets``).

    ``backbone`` picks ViT, Swin or HiP blocks under the same masks. ``dim`` is the width of the output
    tokens, the decoder, heads and projectors (for ViT also the token width), ``heads`` the decoder's
    (and ViT's) heads, ``depth`` the number of self-attention blocks. Swin/HiP options live in ``extra``
    and are derived from ``dim``/``depth`` where left out (see :mod:`.backbone_options`).

    ``audio_frames`` is the spectrogram length (time frames) and ``frames`` the number of video frames
    the position tables are sized for; other input sizes are interpolated. ``num_classes = 0`` builds no
    classifier heads (contrastive pre-training) and ``proj_dim = 0`` no projectors (fine-tuning).
    """

    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    fusion_tokens: int = 8  # [choice] the paper does not give N_f
    n_mels: int = 128
    audio_frames: int = 640
    audio_patch: tuple[int, int] = (16, 16)
    frames: int = 8
    image_size: tuple[int, int] = (224, 224)
    video_patch: tuple[int, int, int] = (1, 16, 16)
    masking: str = "zorro"
    fusion_reads: str = "fusion"  # [choice] decoder: o_F reads fusion tokens ("all": every token)
    num_classes: int = 527
    proj_dim: int = 512  # [choice]
    temperature: float = 0.08  # [paper] τ
    learn_temperature: bool = False
    qkv_bias: bool = True
    drop_path: float = 0.0
    attention: str = "block"  # "block": skip masked blocks; "dense": masked SDPA (reference); "flex": FlexAttention
    backbone: str = "vit"
    extra: dict[str, Any] = field(default_factory=dict)  # backbone-specific options

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", _pair(self.image_size))
        object.__setattr__(self, "audio_patch", _pair(self.audio_patch))
        object.__setattr__(self, "video_patch", tuple(int(v) for v in self.video_patch))
        object.__setattr__(self, "extra", _plain(self.extra))
        problems = self.problems()
        if problems:
            raise ConfigError(problems)

    def problems(self) -> list[str]:
        """Every inconsistency, as ``key: what is wrong`` strings (empty when valid)."""
        out = []
        for key in ("dim", "depth", "heads", "n_mels", "audio_frames", "frames"):
            if not getattr(self, key) >= 1:
                out.append(f"{key}: expected >= 1, got {getattr(self, key)}")
        for key in ("num_classes", "proj_dim", "fusion_tokens"):
            if getattr(self, key) < 0:
                out.append(f"{key}: expected >= 0, got {getattr(self, key)}")
        if self.heads >= 1 and self.dim % self.heads:
            out.append(f"heads: dim {self.dim} is not divisible by heads {self.heads}")
        if self.masking not in MASKINGS:
            out.append(f"masking: expected one of {', '.join(MASKINGS)}, got {self.masking!r}")
        elif self.masking != "independent" and self.fusion_tokens < 1:
            out.append(f"fusion_tokens: masking {self.masking!r} needs at least 1 fusion token")
        if self.fusion_reads not in ("fusion", "all"):
            out.append(f"fusion_reads: expected 'fusion' or 'all', got {self.fusion_reads!r}")
        if self.attention not in ATTENTION_IMPLS:
            out.append(f"attention: expected one of {', '.join(ATTENTION_IMPLS)}, got {self.attention!r}")
        if self.backbone not in backbone_names():
            out.append(f"backbone: expected one of {', '.join(backbone_names())}, got {self.backbone!r}")
        elif not isinstance(self.extra, dict):
            out.append(f"extra: expected a mapping of backbone options, got {self.extra!r}")
        else:
            out.extend(backbone_spec(self.backbone).problems(self))
        out.extend(self._patch_problems())
        if not 0 <= self.drop_path < 1:  # also false for NaN
            out.append(f"drop_path: expected in [0, 1), got {self.drop_path}")
        if not 0 < self.mlp_ratio <= 64:  # also false for NaN
            out.append(f"mlp_ratio: expected in (0, 64], got {self.mlp_ratio}")
        if not self.temperature > 0:
            out.append(f"temperature: expected > 0, got {self.temperature}")
        return out

    def _patch_problems(self) -> list[str]:
        """Input shapes that are not a whole number of patches (the tokenizers could not be built)."""
        if len(self.video_patch) != 3:
            return [f"video_patch: expected (t, h, w), got {list(self.video_patch)}"]
        out = []
        checks = (("audio_patch", self.audio_patch, (("n_mels", self.n_mels), ("audio_frames", self.audio_frames))),
                  ("video_patch", self.video_patch, (("frames", self.frames), ("image_size", self.image_size[0]),
                                                     ("image_size", self.image_size[1]))))
        for key, patch, sizes in checks:
            if min(patch) < 1:
                out.append(f"{key}: expected positive sizes, got {list(patch)}")
                continue
            for (name, size), p in zip(sizes, patch, strict=True):
                if size >= 1 and (size % p or size < p):
                    out.append(f"{key}: {name} {size} is not a whole number of {p}-wide patches "
                               f"({key} {list(patch)})")
                    break
        return out

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZorroConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ZorroConfig keys: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> ZorroConfig:
        return dataclasses.replace(self, **changes)

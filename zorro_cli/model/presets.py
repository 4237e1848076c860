"""Named model presets and ``build_model``."""

from __future__ import annotations

from typing import Any

from .config import ZorroConfig
from .zorro import Zorro

PRESETS: dict[str, dict[str, Any]] = {
    # [paper] ViT-B/16 shapes: 128x640 log-mel -> 8x40 = 320 audio tokens; 8x224x224 video with
    # temporal patch 1 -> 8x14x14 = 1568 video tokens; D 768, 12 layers, 12 heads, MLP 3072.
    "zorro_vit_b16": dict(dim=768, depth=12, heads=12, mlp_ratio=4.0, fusion_tokens=8, n_mels=128,
                          audio_frames=640, frames=8, image_size=224, video_patch=(1, 16, 16)),
    # Tests, the demo and CPU smoke runs: 32x64 log-mel -> 8 audio tokens, 4x32x32 video -> 16 tokens.
    "zorro_vit_tiny": dict(dim=64, depth=2, heads=4, mlp_ratio=2.0, fusion_tokens=4, n_mels=32,
                           audio_frames=64, frames=4, image_size=32, video_patch=(1, 16, 16), proj_dim=32),
}


def preset_config(name: str, **overrides: Any) -> ZorroConfig:
    """The ``ZorroConfig`` of a preset with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {', '.join(sorted(PRESETS))}")
    return ZorroConfig(**{**PRESETS[name], **overrides})


def build_model(name: str, **overrides: Any) -> Zorro:
    """Build a freshly initialised model from a preset, e.g. ``build_model("zorro_vit_tiny", masking="zorro")``."""
    return Zorro(preset_config(name, **overrides))

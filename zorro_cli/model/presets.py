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
    # Swin-B widths/depths [paper: Swin-B: C=128, 2-2-18-2 blocks, heads 4-8-16-32 of 32] at the paper's
    # input shapes, Video-Swin patching [paper: Video Swin]: 8x224x224 with (2,4,4) patches -> 4x56x56 =
    # 12544 video tokens, windows (8,7,7) (shrunk to 4 frames); 128x640 log-mel with 4x4 patches -> 32x160
    # = 5120 audio tokens, windows 8x10 [choice]. Widths/depths/heads derive from dim/depth (backbone_options).
    "zorro_swin_b": dict(backbone="swin", dim=1024, depth=24, heads=32, mlp_ratio=4.0, fusion_tokens=8,
                         n_mels=128, audio_frames=640, audio_patch=(4, 4), frames=8, image_size=224,
                         video_patch=(2, 4, 4), extra=dict(stages=4, audio_window=(8, 10), video_window=(8, 7, 7))),
    # HiP-16-like encoder [paper: HiP: groups 16-4-1, latents 128-256-256, widths 128-256-512, 2-2-18
    # self-attention layers, 32-wide heads] per modality, at the paper's input shapes with the same
    # 4x4 / (2,4,4) patches as Zorro-Swin (5120 audio, 12544 video tokens) [choice]; fusion: 8 latents
    # per level [choice].
    "zorro_hip_b": dict(backbone="hip", dim=512, depth=22, heads=16, mlp_ratio=4.0, fusion_tokens=8,
                        n_mels=128, audio_frames=640, audio_patch=(4, 4), frames=8, image_size=224,
                        video_patch=(2, 4, 4), extra=dict(levels=3)),
    # Tests and CPU smoke runs, same inputs as zorro_vit_tiny. Swin: 4x4 / (2,4,4) patches -> audio 8x16,
    # video 2x8x8; 2 stages (widths 32, 64) so that windows shift, pad and merge at this size.
    "zorro_swin_tiny": dict(backbone="swin", dim=64, depth=4, heads=4, mlp_ratio=2.0, fusion_tokens=4,
                            n_mels=32, audio_frames=64, audio_patch=(4, 4), frames=4, image_size=32,
                            video_patch=(2, 4, 4), proj_dim=32,
                            extra=dict(stages=2, head_dim=16, audio_window=(4, 4), video_window=(2, 4, 4))),
    # HiP: 2 levels (widths 32, 64; 2 + 1 self-attention layers), 4 then 1 group per modality, 8 latents.
    # 8x8 audio patches (32 tokens): with 4x4 ones (16 values a token) the audio head of this tiny HiP
    # trained unreliably on the demo data; 16 latents of width 64 on both levels train every head.
    "zorro_hip_tiny": dict(backbone="hip", dim=64, depth=4, heads=4, mlp_ratio=2.0, fusion_tokens=4,
                           n_mels=32, audio_frames=64, audio_patch=(8, 8), frames=4, image_size=32,
                           video_patch=(2, 4, 4), proj_dim=32,
                           extra=dict(levels=2, head_dim=16, audio_groups=(4, 1), video_groups=(4, 1),
                                      latents=(16, 16), widths=(64, 64), depths=(2, 2))),
}


# One size, one preset per backbone: overriding ``backbone`` on a preset switches to its counterpart, so
# that a recipe's ``model.backbone: swin`` on ``zorro_vit_tiny`` builds ``zorro_swin_tiny``'s shapes.
COUNTERPARTS: tuple[dict[str, str], ...] = (
    {"vit": "zorro_vit_tiny", "swin": "zorro_swin_tiny", "hip": "zorro_hip_tiny"},
    {"vit": "zorro_vit_b16", "swin": "zorro_swin_b", "hip": "zorro_hip_b"},
)


def preset_config(name: str, **overrides: Any) -> ZorroConfig:
    """The ``ZorroConfig`` of a preset with ``overrides`` applied (``backbone``: see :data:`COUNTERPARTS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {', '.join(sorted(PRESETS))}")
    backbone = overrides.get("backbone")
    if backbone is not None and backbone != PRESETS[name].get("backbone", "vit"):
        name = next((f[backbone] for f in COUNTERPARTS if name in f.values() and backbone in f), name)
    base = PRESETS[name]
    if "extra" in overrides:
        overrides = {**overrides, "extra": {**base.get("extra", {}), **overrides["extra"]}}
    return ZorroConfig(**{**base, **overrides})


def build_model(name: str, **overrides: Any) -> Zorro:
    """Build a freshly initialised model from a preset, e.g. ``build_model("zorro_swin_tiny", masking="zorro")``.

    The preset's ``backbone`` (``vit`` | ``swin`` | ``hip``) picks the backbone; any config field can be
    overridden, ``extra`` entries merge into the preset's.
    """
    return Zorro(preset_config(name, **overrides))

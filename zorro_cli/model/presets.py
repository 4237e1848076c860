"""Named model presets (declared by each backbone module, see :mod:`.registry`) and ``build_model``."""

from __future__ import annotations

from typing import Any

from .config import ZorroConfig
from .registry import Preset, all_presets
from .zorro import Zorro

_ALL: dict[str, tuple[str, Preset]] = all_presets()

# Preset name -> its ``ZorroConfig`` fields (the backbone included).
PRESETS: dict[str, dict[str, Any]] = {name: {"backbone": bb, **p.fields} for name, (bb, p) in _ALL.items()}


def counterpart(name: str, backbone: str) -> str:
    """The preset of ``backbone`` with the same size as preset ``name`` (``name`` itself when none):
    a recipe's ``model.backbone: swin`` on ``zorro_vit_tiny`` builds ``zorro_swin_tiny``'s shapes."""
    size = _ALL[name][1].size
    return next((n for n, (bb, p) in _ALL.items() if bb == backbone and p.size == size), name)


def preset_config(name: str, **overrides: Any) -> ZorroConfig:
    """The ``ZorroConfig`` of a preset with ``overrides`` applied (``backbone``: see :func:`counterpart`;
    ``extra`` entries merge into the preset's)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {', '.join(sorted(PRESETS))}")
    backbone = overrides.get("backbone")
    if backbone is not None and backbone != PRESETS[name]["backbone"]:
        name = counterpart(name, backbone)
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

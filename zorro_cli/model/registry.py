"""The backbone registry: one ``BackboneSpec`` per backbone module, one line per module here.

A backbone module (``vit.py``, ``swin.py``, ``hip.py``) ends with ``SPEC = BackboneSpec(...)``: its name,
its builder, the ``extra`` option keys it reads and their validation, its token width, whether timm ViT
weights can initialise it, and its presets. Adding a backbone is one new module plus one line in
:data:`BACKBONE_MODULES`; nothing else lists backbone names. Modules are imported on first use, so
``config.py`` can validate names without importing every backbone (and without an import circle).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from .backbone_options import ShapeConfig
    from .config import ZorroConfig

# name -> module that defines ``SPEC``; the order is the order users see.
BACKBONE_MODULES: dict[str, str] = {
    "vit": "zorro_cli.model.vit",
    "swin": "zorro_cli.model.swin",
    "hip": "zorro_cli.model.hip",
}


@dataclass(frozen=True)
class Preset:
    """A named model: ``ZorroConfig`` fields, and the ``size`` it shares with other backbones' presets
    (overriding ``backbone`` on a preset switches to the same size of the other backbone)."""

    size: str
    fields: Mapping[str, Any]
    note: str = ""


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the rest of the library needs to know about one backbone."""

    name: str
    build: Callable[[ZorroConfig], nn.Module]
    option_keys: tuple[str, ...] = ()
    check: Callable[[ShapeConfig], list[str]] | None = None  # problems of ``extra`` beyond unknown keys
    token_dim: Callable[[ShapeConfig], int] | None = None  # None: the tokens are ``dim`` wide
    vit_init: bool = False  # ``--init`` from a timm ViT state dict
    presets: Mapping[str, Preset] = field(default_factory=dict)

    def problems(self, cfg: ShapeConfig) -> list[str]:
        """Unknown ``extra`` keys (with the nearest valid one) and the backbone's own checks."""
        import difflib

        out = []
        for key in cfg.extra:
            if key not in self.option_keys:
                near = difflib.get_close_matches(str(key), self.option_keys, n=1)
                hint = (f"; did you mean {near[0]!r}?" if near else
                        f"; expected one of {', '.join(self.option_keys)}" if self.option_keys else "")
                out.append(f"extra.{key}: not an option of backbone {self.name!r}{hint}")
        return out if out or self.check is None else self.check(cfg)

    def width(self, cfg: ShapeConfig) -> int:
        """Width of the tokens the tokenizers and fusion tokens feed this backbone."""
        return cfg.dim if self.token_dim is None else self.token_dim(cfg)


def backbone_names() -> tuple[str, ...]:
    """Every registered backbone name (no module is imported)."""
    return tuple(BACKBONE_MODULES)


@cache
def backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name`` (imports its module); ``KeyError`` for an unknown name."""
    spec = importlib.import_module(BACKBONE_MODULES[name]).SPEC
    if not isinstance(spec, BackboneSpec) or spec.name != name:
        raise TypeError(f"{BACKBONE_MODULES[name]}.SPEC is not the BackboneSpec of {name!r}")
    return spec


def all_presets() -> dict[str, tuple[str, Preset]]:
    """``{preset name: (backbone, preset)}`` over every registered backbone, in registry order."""
    out: dict[str, tuple[str, Preset]] = {}
    for name in BACKBONE_MODULES:
        for preset_name, preset in backbone_spec(name).presets.items():
            if preset_name in out:
                raise ValueError(f"preset {preset_name!r} is defined by two backbones")
            out[preset_name] = (name, preset)
    return out

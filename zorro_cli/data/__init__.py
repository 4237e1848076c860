"""Data: manifests -> PyAV decoding -> HDF5 cache -> torch datasets.

``from zorro_cli.data import open_cache; c = open_cache(dir); c.clip_ids(); c.load(clip_id)``.
Names are imported lazily so that ``zorro_cli.recipes`` (which needs only ``data.config``) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AugmentConfig": "augment",
    "Cache": "cache",
    "CacheError": "cache",
    "ClipDataset": "dataset",
    "PreprocessConfig": "config",
    "collate": "dataset",
    "make_synthetic_dataset": "synth",
    "open_cache": "cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)

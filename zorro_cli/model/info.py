"""Human-readable summaries of model presets (used by ``zorro models``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ..output import fitted_table
from .masks import GROUPS, TokenLayout
from .presets import PRESETS, build_model
from .zorro import Zorro


def token_layout(model: Zorro) -> TokenLayout:
    """Token counts of a model at its configured input shapes."""
    x = model.example_inputs(batch=1)
    tokens = model.tokenize(x["audio"], x["video"])
    return TokenLayout(**{g: (tokens[g].shape[1] if g in tokens else 0) for g in GROUPS})


def preset_table(console: Console | None = None) -> list[dict[str, Any]]:
    """Print one row per preset: shapes, tokens per group, parameters; returns the rows (for ``--json``)."""
    table = fitted_table("Zorro model presets", {"preset": 0, "width x depth/heads": 2, "audio in": 1,
                                                 "video in": 1, "tokens (A/F/V)": 2, "params": 1}, no_wrap=("preset",))
    listing: list[dict[str, Any]] = []
    for name in PRESETS:
        model = build_model(name)
        c = model.config
        lay = token_layout(model)
        n = sum(p.numel() for p in model.parameters())
        listing.append({"preset": name, "backbone": c.backbone, "dim": c.dim, "depth": c.depth, "heads": c.heads,
                        "tokens": {"audio": lay.audio, "fusion": lay.fusion, "video": lay.video}, "params": n})
        table.add_row(name, f"{c.dim}x{c.depth}/{c.heads}", f"{c.n_mels}x{c.audio_frames}",
                      f"{c.frames}x{c.image_size[0]}x{c.image_size[1]}",
                      f"{lay.audio}/{lay.fusion}/{lay.video}", f"{n / 1e6:.1f}M")
    (console or Console()).print(table)
    return listing

"""``zorro models``: the model presets with their token counts and parameter counts."""

from __future__ import annotations

from ..model.info import preset_table


def run() -> None:
    """Print the preset table."""
    preset_table()

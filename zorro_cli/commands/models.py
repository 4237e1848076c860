"""``zorro models``: the model presets with their token counts and parameter counts."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ..model.info import preset_table
from ..output import stderr_console


def run(*, table_to_stderr: bool = False) -> dict[str, Any]:
    """Print the preset table (on stderr with ``table_to_stderr``, when stdout carries the JSON); returns
    its rows."""
    return {"presets": preset_table(stderr_console() if table_to_stderr else Console())}

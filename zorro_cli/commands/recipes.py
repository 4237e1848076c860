"""``zorro recipes``: list the bundled recipes, or show one with every key's value, type and comment."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ..output import stderr_console
from ..recipes.info import show_recipe, show_recipes


def run(*, name: str | None = None, table_to_stderr: bool = False) -> dict[str, Any]:
    """A table of the bundled recipes, or of every key of recipe ``name`` (a bundled name or a path), on
    stdout (on stderr with ``table_to_stderr``, when stdout carries the JSON); returns the same rows."""
    console = stderr_console() if table_to_stderr else Console()
    if name:
        return {"recipe": name, "keys": show_recipe(name, console)}
    return {"recipes": show_recipes(console)}

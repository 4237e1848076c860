"""``zorro recipes``: list the bundled recipes, or show one with every key, its type, default and value."""

from __future__ import annotations

from ..recipes.info import show_recipe, show_recipes


def run(*, name: str | None = None) -> None:
    """A table of the bundled recipes, or of every key of recipe ``name`` (a bundled name or a path)."""
    if name:
        show_recipe(name)
    else:
        show_recipes()

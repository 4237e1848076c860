"""``zorro recipes``: list the bundled recipes, or show one with every key, its type, default and value."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .loading import RECIPE_DIR, Recipe, bundled_recipes, load_recipe, resolve_recipe_path


def describe(name: str) -> str:
    """The first comment line of a bundled recipe file."""
    for line in (RECIPE_DIR / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _type_name(tp: Any) -> str:
    text = str(tp).replace("typing.", "")
    return getattr(tp, "__name__", text) if not typing.get_args(tp) else text


def rows(obj: Any, default: Any, prefix: str = "") -> Iterator[tuple[str, str, Any, Any]]:
    """``(dotted key, type, default, value)`` for every leaf of a recipe (sections recursed)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, dflt = getattr(obj, f.name), getattr(default, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from rows(value, dflt, key + ".")
        else:
            yield key, _type_name(hints[f.name]), dflt, value


def show_recipes(console: Console | None = None) -> None:
    """One line per bundled recipe."""
    table = Table(title=f"bundled recipes ({RECIPE_DIR})")
    for col in ("name", "preset", "masking", "modalities", "description"):
        table.add_column(col)
    for name in bundled_recipes():
        r = load_recipe(name)
        table.add_row(name, r.model.preset, r.model.masking, ",".join(r.data.modalities), escape(describe(name)))
    (console or Console()).print(table)


def show_recipe(name: str, console: Console | None = None) -> None:
    """Every key of one recipe; values that differ from the defaults are bold."""
    path = resolve_recipe_path(name)
    recipe = load_recipe(str(path))
    table = Table(title=f"{path}")
    for col in ("key", "type", "default", "value"):
        table.add_column(col)
    for key, tp, dflt, value in rows(recipe, Recipe()):
        shown = f"[bold]{escape(repr(value))}[/bold]" if value != dflt else escape(repr(value))
        table.add_row(key, escape(tp), escape(repr(dflt)), shown)
    (console or Console()).print(table)

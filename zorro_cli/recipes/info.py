"""``zorro recipes``: list the bundled recipes, or show one with every key's value, type and comment.

The names a user types (recipe names, presets, dotted keys) are never cut: their columns do not wrap,
the other columns fold, so the tables fit an 80-column terminal or log.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from ..output import fitted_table
from .comments import key_comments
from .loading import RECIPE_DIR, Recipe, bundled_recipes, load_recipe, recipe_to_dict, resolve_recipe_path


def describe(name: str) -> str:
    """The first comment line of a bundled recipe file."""
    for line in (RECIPE_DIR / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def type_label(tp: Any) -> str:
    """A short name for a field type: ``Literal['a', 'b']`` -> ``a|b``, ``X | None`` -> ``X|null``,
    ``tuple[X, ...]`` -> ``list[X]``, ``tuple[int, int]`` -> ``[int, int]``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return "|".join(type_label(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list[{type_label(args[0])}]"
        return "[" + ", ".join(type_label(a) for a in args) + "]"
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_label(a) for a in args)}]"
    return getattr(tp, "__name__", str(tp))


def rows(obj: Any, default: Any, prefix: str = "") -> Iterator[tuple[str, str, Any, Any]]:
    """``(dotted key, type, default, value)`` for every leaf of a recipe (sections recursed)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, dflt = getattr(obj, f.name), getattr(default, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from rows(value, dflt, key + ".")
        else:
            yield key, type_label(hints[f.name]), dflt, value


def _show(value: Any) -> str:
    """A value as a recipe file would hold it (YAML flow style, one line)."""
    return yaml.safe_dump(recipe_to_dict(value), default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def show_recipes(console: Console | None = None) -> list[dict[str, Any]]:
    """One line per bundled recipe; returns the rows (for ``--json``)."""
    table = fitted_table(f"bundled recipes ({RECIPE_DIR})", {"name": 0, "preset": 0, "inputs": 1, "description": 5},
                         no_wrap=("name", "preset"))
    listing = []
    for name in bundled_recipes():
        r = load_recipe(name)
        listing.append({"name": name, "preset": r.model.preset, "inputs": list(r.data.modalities),
                        "description": describe(name)})
        table.add_row(name, r.model.preset, "+".join(r.data.modalities), escape(describe(name)))
    (console or Console()).print(table)
    return listing


def show_recipe(name: str, console: Console | None = None) -> list[dict[str, Any]]:
    """Every key of one recipe: its value (bold, with the default, where the recipe changes it), type and the
    recipe file's own comment on that key; returns the rows (for ``--json``)."""
    path = resolve_recipe_path(name)
    recipe = load_recipe(str(path))
    notes = key_comments(path.read_text(encoding="utf-8"))
    table = fitted_table(f"{path}", {"key": 0, "value  # comment": 5, "type": 2}, no_wrap=("key",))
    listing = []
    for key, tp, dflt, value in rows(recipe, Recipe()):
        listing.append({"key": key, "value": recipe_to_dict(value), "default": recipe_to_dict(dflt), "type": tp,
                        "comment": notes.get(key, "")})
        shown = escape(_show(value))
        if value != dflt:
            shown = f"[bold]{shown}[/bold] (default {escape(_show(dflt))})"
        if key in notes:
            shown += f"\n[dim]# {escape(notes[key])}[/dim]"
        table.add_row(key, shown, escape(tp))
    (console or Console()).print(table)
    return listing

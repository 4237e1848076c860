"""Command-line conventions shared by every ``zorro`` verb (used by ``cli.py``; nothing here runs a verb).

- Flags (``--dry-run``, ``--rebuild``) show no ``<bool>`` metavar in ``--help``: a flag takes no value.
- A flag mistake (unknown option, a value not among the choices, a missing required option) is one line
  on stderr, ``error: ...``, exit 2, like every other user mistake; an unknown option that names a
  recipe key (``--lr 1e-3``, the litgpt habit) is answered with the override to write instead
  (``train.lr=1e-3``).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

from typer import Exit
from typer._click import Context, Parameter  # typer vendors click; these are its classes
from typer._click.exceptions import NoSuchOption, UsageError
from typer.core import TyperCommand, TyperGroup


def recipe_keys() -> list[str]:
    """Every dotted leaf key of a recipe (``train.lr``, ``data.augment.mixup_alpha``, ...)."""
    from .recipes import Recipe

    def leaves(obj: Any, prefix: str) -> list[str]:
        out: list[str] = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            out += leaves(value, key + ".") if dataclasses.is_dataclass(value) else [key]
        return out

    return leaves(Recipe(), "")


def override_hint(option: str, value: str | None, keys: Sequence[str]) -> str | None:
    """The ``section.key=value`` override meant by an unknown ``--option`` that names a recipe key's last
    part (``--lr`` -> ``train.lr``, ``--max-steps`` -> ``train.max_steps``); None when it names none."""
    name, _, inline = option.lstrip("-").partition("=")
    name = name.replace("-", "_")
    if not name:
        return None
    value = inline or value or "VALUE"
    hits = [k for k in keys if k == name or k.endswith("." + name)]
    if not hits:
        return None
    return " or ".join(f"{k}={value}" for k in hits)


def _value_after(args: list[str], option: str) -> str | None:
    """The value given to ``option`` in ``args`` (``--lr 1e-3`` or ``--lr=1e-3``), if any."""
    for i, arg in enumerate(args):
        if arg.startswith(option + "="):
            return arg.partition("=")[2]
        if arg == option and i + 1 < len(args) and not args[i + 1].startswith("-"):
            return args[i + 1]
    return None


def _hide_flag_metavars(params: list[Parameter]) -> list[Parameter]:
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""  # rich help shows the metavar in place of the type: nothing for a flag
    return params


class ZorroCommand(TyperCommand):
    """A verb: flags without metavars; recipe keys given as options get the override to write."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _hide_flag_metavars(super().get_params(ctx))

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        given = list(args)  # (the parser consumes ``args``)
        try:
            return super().parse_args(ctx, args)
        except UsageError as e:
            message = e.format_message()
            if isinstance(e, NoSuchOption):
                hint = override_hint(e.option_name, _value_after(given, e.option_name), recipe_keys())
                if hint is not None:
                    message = (f"no such option {e.option_name}; recipe keys are set as overrides after the "
                               f"flags: write {hint}")
            one_line = " ".join(message.split())
            print(f"error: {one_line} (see `{ctx.command_path} --help`)", file=sys.stderr)
            raise Exit(2) from None


class ZorroGroup(TyperGroup):
    """The ``zorro`` group: flags without metavars."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _hide_flag_metavars(super().get_params(ctx))

"""Allowed ranges of numeric settings, as data: a ``{key: Range}`` table per recipe section, read by one
function, :func:`range_problems`.

Every bound is written as "what is allowed", checked with ``math.isfinite`` first, so NaN and infinity
are refused everywhere (a check written ``x <= 0`` is false for NaN and lets it through). Upper bounds
are there to refuse a request that could only exhaust memory (``data.image_size=100000``), not to
second-guess a setting. Pure, no imports beyond the standard library: ``zorro_cli.data.config`` and
``zorro_cli.recipes.sections`` both use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """``lo <= x <= hi`` (``<`` on a side marked open); None: unbounded on that side. ``optional``: the
    value may also be None (a null meaning "the preset's" or "none")."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False

    def holds(self, x: float) -> bool:
        """Whether ``x`` is finite and inside the range."""
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return False
        above = self.lo is None or (x > self.lo if self.lo_open else x >= self.lo)
        below = self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)
        return above and below

    def text(self) -> str:
        """The range as the user reads it: ``> 0``, ``>= 1``, ``in [0, 1)``, ``in [1, 2048]``."""
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return "a finite number"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def positive(hi: float | None = None, optional: bool = False) -> Range:
    """``> 0`` (up to ``hi``)."""
    return Range(0, hi, lo_open=True, optional=optional)


def at_least(lo: float, hi: float | None = None, optional: bool = False) -> Range:
    """``>= lo`` (up to ``hi``)."""
    return Range(lo, hi, optional=optional)


FRACTION = Range(0, 1)  # a probability or a share, [0, 1]


def range_problems(obj: Any, table: Mapping[str, Range]) -> list[str]:
    """``key: expected <range>, got <value>`` for every field of ``obj`` named in ``table`` that is out of
    its range; a tuple or list value is checked item by item."""
    out = []
    for key, rng in table.items():
        value = getattr(obj, key)
        if value is None and rng.optional:
            continue
        items = value if isinstance(value, (tuple, list)) else [value]
        if not items or not all(rng.holds(v) for v in items):
            shown = list(value) if isinstance(value, tuple) else value
            out.append(f"{key}: expected {'each ' if isinstance(value, (tuple, list)) else ''}{rng.text()}, "
                       f"got {shown}")
    return out


EVAL_CROPS = (1, 3)  # the centre square of the short side, or the start / centre / end squares


def crops_problem(crops: int) -> str | None:
    """Why ``crops`` spatial crops per window cannot be taken (None: they can); one rule for the recipe's
    ``eval.crops``, ``--crops`` of ``evaluate`` and ``predict``, and the dataset."""
    if crops in EVAL_CROPS and not isinstance(crops, bool):
        return None
    return f"expected 1 or 3 spatial crops, got {crops}"

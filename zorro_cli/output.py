"""Where a verb's output goes, in one place: results for scripts on stdout, everything else on stderr.

- :func:`emit_result`: the one JSON line a verb prints on stdout (and ``--json FILE``; ``--json -`` is
  stdout itself, never a file named ``-``). Nothing else is ever written to stdout by a verb.
- :func:`stderr_console`: the console for humans. On a terminal it is rich's; off a terminal (nohup,
  clusters, CI) lines are never hard-wrapped at 80 columns, so ``grep`` finds a whole line.
- :func:`say`: one line for a human on stderr (a choice made for the user, a hint).
- :func:`fitted_table`: listings that fold rather than cut the names a user must type.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

STDOUT = "-"


def is_main_process() -> bool:
    """Rank 0 (or not distributed), from the launcher's environment (torchrun, accelerate launch)."""
    return int(os.environ.get("RANK", "0")) == 0


def result_line(result: dict[str, Any]) -> str:
    """A result as one JSON line (paths and other objects as strings)."""
    return json.dumps(result, default=str)


def emit_result(result: dict[str, Any], json_target: str | Path | None = None) -> None:
    """Print ``result`` as one JSON line on stdout; ``json_target`` (a path other than ``-``) also gets it,
    indented. Only the main process writes."""
    if not is_main_process():
        return
    if json_target is not None and str(json_target) != STDOUT:
        from .atomic import write_text_atomic

        path = Path(json_target)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(result, indent=2, default=str) + "\n")
    sys.stdout.write(result_line(result) + "\n")
    sys.stdout.flush()


def stderr_console() -> Console:
    """rich on stderr; off a terminal, ``soft_wrap`` keeps every printed line whole (no hard wraps)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def say(message: str) -> None:
    """One line for a human on stderr (main process only)."""
    if is_main_process():
        print(message, file=sys.stderr, flush=True)


def fitted_table(title: str, columns: dict[str, int], no_wrap: tuple[str, ...]) -> Table:
    """A table for 80 columns: the ``no_wrap`` columns (the names a user types: recipes, presets, keys) are
    never cut or folded; the others share the rest of the width in the given ratios and wrap."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for col, ratio in columns.items():
        if col in no_wrap:
            table.add_column(col, no_wrap=True, overflow="ignore")
        else:
            table.add_column(col, overflow="fold", ratio=ratio)
    return table

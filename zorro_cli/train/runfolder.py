"""A run folder is never silently reused: what a training checks and repairs before its first step.

Under the run folder's lock (``zorro_cli.lockfile``, taken by the main process only):
- temporaries of checkpoints and records that a killed run left behind are removed (:func:`clean_stale`);
- a folder that holds checkpoints is only continued, never restarted over (:func:`check_reuse`): without
  ``--resume`` it is refused, and ``--resume`` may only continue from its newest checkpoint;
- ``metrics.jsonl`` loses the rows past the step the run resumes from, so no step is logged twice
  (:func:`trim_metrics`), and ``run.json`` gains one entry per invocation (:func:`record_invocation`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..atomic import is_temporary, write_text_atomic
from ..errors import UsageError
from .checkpoint import step_dirs, step_of

CHECKPOINTS = "checkpoints"


class RunFolderError(UsageError):
    """``--out`` holds a run that this invocation would overwrite or mix with another: one line, exit 2."""


def _is_stale(path: Path) -> bool:
    """A temporary (``.NAME.tmp-*``) or set-aside (``.NAME.old-*``) name of a checkpoint or record."""
    return is_temporary(path) or (path.name.startswith(".") and ".old-" in path.name)


def clean_stale(run_dir: Path) -> list[Path]:
    """Remove the temporaries a killed run left in ``run_dir`` and its ``checkpoints/``; returns them.

    Only call this while holding the run folder's lock: then no other writer's temporary can be there."""
    removed = []
    for folder in (run_dir, run_dir / CHECKPOINTS):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if not _is_stale(p):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def holds_checkpoints(run_dir: Path) -> bool:
    """Whether ``run_dir/checkpoints`` has a checkpoint folder or a ``last`` / ``best`` entry."""
    root = run_dir / CHECKPOINTS
    return bool(step_dirs(root)) or any((root / n).is_symlink() or (root / n).exists() for n in ("last", "best"))


def check_reuse(run_dir: Path, resumed: Path | None, resumed_step: int) -> None:
    """Refuse to start a run that would overwrite or mix with the checkpoints already in ``run_dir``."""
    if not holds_checkpoints(run_dir):
        return
    root = (run_dir / CHECKPOINTS).resolve()
    steps = step_dirs(run_dir / CHECKPOINTS)
    newest = steps[-1].name if steps else "checkpoints/last"
    if resumed is None:
        raise RunFolderError(f"--out {run_dir}: already holds a run's checkpoints (newest {newest}); continue it "
                             "with --resume auto, or train into a fresh folder")
    if resumed.resolve().parent != root:
        raise RunFolderError(f"--out {run_dir}: holds another run's checkpoints (newest {newest}); resume "
                             f"{resumed} into a fresh folder, or continue this one with --resume auto")
    later = [p.name for p in steps if (step_of(p) or 0) > resumed_step]
    if later:
        raise RunFolderError(f"--resume {resumed}: --out {run_dir} holds later checkpoints ({', '.join(later)}); "
                             "continue from the newest (--resume auto), or resume into a fresh folder")


def trim_metrics(path: Path, step: int) -> int:
    """Drop the rows of ``metrics.jsonl`` past ``step`` (and a torn last line); returns how many."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            keep = int(row["step"]) <= step
        except (ValueError, KeyError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        elif line.strip():
            dropped += 1
    if dropped:
        write_text_atomic(path, "".join(f"{line}\n" for line in kept))
    return dropped


def record_invocation(path: Path, invocation: dict[str, Any]) -> dict[str, Any]:
    """Write ``run.json``: the latest invocation's keys at the top (as before) and ``invocations``, every
    invocation in order (a ``run.json`` written before this list existed counts as the first)."""
    history: list[dict[str, Any]] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = None
        if isinstance(old, dict):
            listed = old.get("invocations")
            history = list(listed) if isinstance(listed, list) else [old]
    record = {**invocation, "invocations": [*history, invocation]}
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return record

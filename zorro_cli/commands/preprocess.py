"""``zorro preprocess``: a manifest of raw media -> a sharded HDF5 cache (``zorro_cli.data.build``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.forking import decode_context
from ..errors import Failure, UsageError

# The cache builder (h5py, PyAV, the manifest readers) is imported inside ``run`` and ``merge``: ``run``
# first starts the decode workers' fork server, whose 1.5-2.5 s of imports then overlap these.


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard: expected I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise UsageError(f"--shard: expected 0 <= I < N, got {text!r}")
    return i, n


def run(*, manifests: Sequence[Path], media_root: Path | None, out: Path | None, fmt: str = "generic",
        workers: int = 1, shard_size: int | None = None, shard: str | None = None, recipe: str | None = None,
        overrides: Sequence[str] = (), labels: Path | None = None, rebuild: bool = False) -> dict[str, Any]:
    """Cache the clips of ``manifests`` (or this ``shard`` part of them) into ``out``; returns the summary.

    ``overrides`` are recipe overrides; a bare ``key=value`` means ``preprocess.key=value``. Raises
    ``UsageError`` for bad inputs and ``Failure`` when not a single clip could be cached.
    """
    missing = [flag for flag, value in (("--out", out), ("--media-root", media_root)) if value is None]
    if out is None or media_root is None:
        raise UsageError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required")
    if workers > 0:
        decode_context()  # start the fork server now (it dies with this process, also on a usage error below)
    from ..data.build import Job, preprocess
    from ..recipes import load_recipe

    keys = [o if o.split("=", 1)[0].count(".") else f"preprocess.{o}" for o in overrides]
    if shard_size is not None:
        keys.append(f"preprocess.shard_size={shard_size}")
    cfg = load_recipe(recipe, keys, model_checks=False).preprocess  # no model here: torch stays out
    job = Job(tuple(manifests), fmt, media_root, out, workers, parse_shard(shard), labels, rebuild)
    return _report(preprocess(cfg, job), out)


def merge(*, parts: Sequence[Path], out: Path | None) -> dict[str, Any]:
    """Gather the shards of ``--shard I/N`` part folders into ``out`` and finish the cache."""
    if out is None:
        raise UsageError("--out is required")
    from ..data.index import merge_parts

    return _report(merge_parts(list(parts), out), out)


def _report(summary: dict[str, Any], out: Path) -> dict[str, Any]:
    """One line on stderr; ``Failure`` when nothing was cached."""
    counts = summary.get("counts", {})
    cached = counts.get("cached", 0)
    if summary.get("complete", True):
        line = (f"cached {cached} of {counts.get('rows', '?')} clips ({counts.get('failed', 0)} failed, "
                f"see {out / 'failures.csv'}: every input not cached, with its reason; plan_failures.csv: "
                f"those rejected before decoding) in {summary.get('shards')} shards -> {out}")
    else:
        line = (f"part {summary['part']} done: {cached} clips cached in its shards; run "
                f"`zorro preprocess --merge ... --out {out}` once every part has finished")
    if cached == 0:
        raise Failure(line)
    print(line, file=sys.stderr)
    return summary

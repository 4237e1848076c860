"""Does a cache fit a checkpoint? The one check every path that feeds a trained model runs first.

A checkpoint's ``config.json`` records the ``labels`` it was trained on, in order, and the
``preprocessing`` of its training cache (the cache's ``cache.json`` settings). A cache made with other
labels, another label order, or other audio / video settings gives numbers that look fine and mean
nothing (class 3 scored as class 0; a 22.05 kHz log-mel read as 16 kHz), so ``zorro evaluate``, ``zorro
export`` and any predicting verb refuse it in one line naming every difference:

    from zorro_cli.evaluation.compat import check_cache
    check_cache(config_json_dict, cache, what="--data runs/cache")

Checkpoints written before a key was recorded are not checked on that key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..data.cache import Cache

# Settings of a cache that change what a model reads: audio (rate, mel analysis) and video (rate, size).
MATCH_KEYS: tuple[str, ...] = ("sample_rate", "n_mels", "win_length", "hop_length", "n_fft", "f_min", "f_max",
                               "log_offset", "fps", "short_side")


class MismatchError(UsageError):
    """A cache (or input) made differently from the checkpoint's training data: one line, exit 2."""


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def settings_mismatches(trained: Mapping[str, Any], given: Mapping[str, Any],
                        keys: Sequence[str] = MATCH_KEYS) -> list[str]:
    """``"KEY GIVEN (checkpoint: TRAINED)"`` for every key both record with different values."""
    return [f"{k} {given[k]} (checkpoint: {trained[k]})" for k in keys
            if k in trained and k in given and not _same(trained[k], given[k])]


def label_mismatch(trained: Sequence[str], given: Sequence[str]) -> str | None:
    """How ``given`` label names differ from the ``trained`` ones (order matters), or None."""
    trained, given = list(trained), list(given)
    if trained == given:
        return None
    if len(trained) != len(given):
        return f"{len(given)} labels (checkpoint: {len(trained)})"
    i = next(i for i, (a, b) in enumerate(zip(trained, given, strict=True)) if a != b)
    kind = "the same labels in another order" if sorted(trained) == sorted(given) else "other labels"
    return f"{kind} (label {i} is {given[i]!r}, checkpoint: {trained[i]!r})"


def cache_mismatches(config: Mapping[str, Any], label_names: Sequence[str], settings: Mapping[str, Any],
                     multilabel: bool | None = None) -> list[str]:
    """Every way a cache (its labels, settings, task type) differs from a checkpoint's ``config.json``."""
    problems = []
    labels = config.get("labels")
    if isinstance(labels, list) and (labels or label_names):
        found = label_mismatch(labels, label_names)
        if found:
            problems.append(found)
    if multilabel is not None and isinstance(config.get("multilabel"), bool) and config["multilabel"] != multilabel:
        problems.append(f"{'multi' if multilabel else 'single'}-label (checkpoint: "
                        f"{'multi' if config['multilabel'] else 'single'}-label)")
    return problems + settings_mismatches(config.get("preprocessing") or {}, settings)


def check_cache(config: Mapping[str, Any], cache: Cache, what: str) -> None:
    """Raise :class:`MismatchError` naming every difference between ``cache`` and the checkpoint whose
    ``config.json`` is ``config``; ``what`` names the cache for the message (``"--data DIR"``)."""
    problems = cache_mismatches(config, cache.label_names, cache.settings, cache.multilabel)
    if problems:
        raise MismatchError(f"{what}: made differently from the checkpoint's training data: {'; '.join(problems)}; "
                            "use a cache preprocessed with the checkpoint's settings and label list")


def check_model_config(config: Mapping[str, Any], what: str) -> None:
    """Refuse a ``config.json`` that contradicts its own model (label count vs classes, mel bins), so an
    export never carries a label list or preprocessing that its model does not read."""
    model = config.get("model") or {}
    problems = []
    labels, classes = config.get("labels"), model.get("num_classes")
    if isinstance(labels, list) and isinstance(classes, int) and classes > 0 and len(labels) != classes:
        problems.append(f"{len(labels)} labels for a model with {classes} classes")
    pre = config.get("preprocessing") or {}
    if "n_mels" in pre and "n_mels" in model and int(pre["n_mels"]) != int(model["n_mels"]):
        problems.append(f"preprocessing with {pre['n_mels']} mel bins for a model reading {model['n_mels']}")
    if problems:
        raise MismatchError(f"{what}: config.json contradicts its model: {'; '.join(problems)}")

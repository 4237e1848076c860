"""Find each manifest row's media file under ``--media-root`` and decide the clip window to decode.

Downloaded media are named in many ways (``YTID.mp4``, ``YTID_30.mp4``, ``YTID_30000.mkv``,
``label/YTID_000059_000069.mp4`` ...). Each format has default name patterns (``ManifestFormat.patterns``;
Python format fields from the row: ``{ytid} {start} {end} {start_ms} {end_ms} {start_f} {end_f}
{label} {label_} {filename} {stem} {path}``), tried in order; the recipe's ``media_patterns``
replaces them. A pattern matches a file of that relative path, or of that path plus any extension.

A pattern that names the start or end finds a file already cut to the clip, so the window is the whole
file (``clip_window: auto``); a pattern without them finds the full video, and the manifest's window is
decoded from it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .manifests import Manifest, Row, manifest_format

NOT_MEDIA = frozenset({".csv", ".tsv", ".txt", ".json", ".md", ".part", ".ytdl", ".tmp", ".h5", ".log"})


@dataclass(frozen=True, slots=True)
class ClipTask:
    """One clip to decode: the unit of work of a preprocessing worker (picklable, small)."""

    clip_id: str
    path: str  # as given in the manifest, else the media path relative to the media root
    media: str  # absolute file path
    labels: tuple[int, ...]
    split: str
    start: float = 0.0
    end: float | None = None


def clip_window(start: float | None, end: float | None, trimmed: bool, mode: str) -> tuple[float, float | None]:
    """The ``(start, end)`` seconds to decode from the file (``end=None``: the whole file).

    ``mode``: ``auto`` (the manifest window, or the whole file when it was found by a pattern naming
    the window, i.e. already cut), ``manifest`` (always the manifest window), ``whole`` (never).
    """
    if mode == "whole" or start is None or end is None:
        return 0.0, None
    if mode == "auto" and trimmed:
        return 0.0, end - start
    return start, end


class MediaIndex:
    """Files under a root by relative path with and without extension (walked once, on first need)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stems: dict[str, str] | None = None

    def _walk(self) -> dict[str, str]:
        stems: dict[str, str] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            rel_dir = os.path.relpath(folder, self.root)
            for name in sorted(files):
                ext = os.path.splitext(name)[1]
                if ext.lower() in NOT_MEDIA or name.startswith("."):
                    continue
                rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
                stems.setdefault(rel[: len(rel) - len(ext)] if ext else rel, rel)
        return stems

    def find(self, rel: str) -> str | None:
        """The relative path of ``rel`` itself or of ``rel.<any extension>``, None when absent. Raises
        ``OSError`` for a name the file system refuses (too long); see :func:`confine` for ``..``."""
        rel = rel.replace("\\", "/").lstrip("/")
        if rel and ((self.root / rel).is_file() or (self.root / rel).is_symlink()):
            return rel  # a broken link or a link loop too: confine() says what is wrong with it
        if self._stems is None:
            self._stems = self._walk()
        return self._stems.get(rel)


def confine(root: Path, rel: str) -> tuple[str | None, str]:
    """``(absolute real path, "")`` of ``root/rel`` with every link resolved, or ``(None, reason)`` when
    it leads outside ``root`` (``..``, a link pointing out) or cannot be resolved (a link loop)."""
    try:
        real = os.path.realpath(root / rel, strict=True)
    except OSError as exc:
        return None, f"cannot resolve the media path ({os.strerror(exc.errno) if exc.errno else exc})"
    if not Path(real).is_relative_to(os.path.realpath(root)):
        return None, f"media path {rel!r} resolves outside --media-root (to {real})"
    return real, ""


def find_media(row: Row, index: MediaIndex, patterns: Sequence[str]) -> tuple[str | None, bool, list[str]]:
    """``(relative path or None, trimmed, names tried)`` for a row."""
    tried = []
    for pattern in patterns:
        try:
            rel = pattern.format(**row.fields)
        except (KeyError, ValueError, IndexError):
            continue
        if rel in tried:
            continue
        tried.append(rel)
        hit = index.find(rel)
        if hit is not None:
            return hit, "{start" in pattern or "{end" in pattern, tried
    return None, False, tried


def plan_clips(manifest: Manifest, fmt: str, media_root: Path, patterns: Sequence[str],
               mode: str) -> tuple[list[ClipTask], list[tuple[str, str]]]:
    """Clip tasks in manifest order plus ``(path, reason)`` for rows that cannot become one."""
    index = MediaIndex(media_root)
    form = manifest_format(fmt)
    patterns = tuple(patterns) or form.patterns
    label_ids = {name: i for i, name in enumerate(manifest.label_names)}
    tasks: list[ClipTask] = []
    failures = list(manifest.problems)
    seen: dict[str, str] = {}
    for row in manifest.rows:
        if row.clip_id in seen:
            failures.append((row.path, f"duplicate clip {row.clip_id!r} (first at {seen[row.clip_id]})"))
            continue
        seen[row.clip_id] = row.where
        try:
            rel, trimmed, tried = find_media(row, index, patterns)
        except OSError as exc:  # e.g. a 5,000-character name: a failure row, not the end of the run
            failures.append((row.path, f"cannot look up the media file ({os.strerror(exc.errno or 0)})"))
            continue
        if rel is None:
            failures.append((row.path, f"media not found under --media-root (tried {', '.join(tried[:4])})"))
            continue
        media, reason = confine(media_root, rel)
        if media is None:
            failures.append((row.path, reason))
            continue
        start, end = clip_window(row.start, row.end, trimmed, mode)
        path = row.path if form.keeps_path else rel
        tasks.append(ClipTask(row.clip_id, path, media, tuple(sorted({label_ids[n] for n in row.labels})),
                              row.split, start, end))
    return tasks, failures

"""The comments of a recipe file, by dotted key: what ``zorro recipes NAME`` shows beside each value.

PyYAML drops comments, and a round-tripping YAML library is a heavy dependency for one column, so this
reads the small subset our recipes are written in: block mappings indented with spaces, one
``key: value  # comment`` per line (flow lists like ``[audio, video]`` and quoted strings as values).
A comment on a line of its own belongs to no key. ``#`` inside quotes is not a comment.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*)\s*:(?P<rest>.*)$")


def split_comment(text: str) -> tuple[str, str]:
    """``(value text, comment)`` of the part of a line after ``key:``; a ``#`` starts a comment when it is
    outside quotes and at the start or after whitespace (YAML's rule)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1:].strip()
    return text.strip(), ""


def key_comments(yaml_text: str) -> dict[str, str]:
    """``{"section.key": "comment"}`` for every mapping key that has a comment on its line."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    for line in yaml_text.splitlines():
        m = _KEY.match(line)
        if m is None:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [m["key"]])
        value, comment = split_comment(m["rest"])
        if comment:
            out[dotted] = comment
        if not value:  # a nested mapping follows
            stack.append((indent, m["key"]))
    return out

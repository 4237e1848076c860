"""The two kinds of error a verb raises; ``cli.py`` maps them to exit codes and one line on stderr.

- :class:`UsageError` (exit 2): the request cannot be carried out as given (bad flag, recipe, manifest,
  cache or checkpoint named on the command line). Fix the command and run it again.
- :class:`Failure` (exit 1): the request was sound but the work failed (training diverged, an export's
  parity check failed, no clip could be cached).

Library modules raise subclasses with their own names (``RecipeError``, ``CacheError``, ...) so callers
from Python can catch them precisely; ``str()`` of every one is one line for the user.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A request that cannot be carried out as given: exit 2."""


class Failure(RuntimeError):
    """Work that was attempted and failed: exit 1."""

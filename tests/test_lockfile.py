"""The folder lock: a second writer is refused in one line; a dead holder's lock is taken over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zorro_cli.errors import UsageError
from zorro_cli.lockfile import LockedError, hold_lock, lock_path

_HOLD = "import sys, time; from zorro_cli.lockfile import hold_lock\n" \
    "with hold_lock(sys.argv[1], what='cache'):\n    print('held', flush=True); time.sleep(60)\n"


def test_second_writer_refused_with_holder_named(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(LockedError) as info, hold_lock(tmp_path, what="cache"):
            pass
        message = str(info.value)
        assert isinstance(info.value, UsageError)
        assert "\n" not in message and f"pid {child.pid}" in message and "cache" in message
    finally:
        child.kill()
        child.wait()
    # the holder was SIGKILLed: its lock is free again without any clean-up
    with hold_lock(tmp_path, what="cache") as path:
        assert path == lock_path(tmp_path)


def test_other_names_do_not_conflict_and_release_on_error(tmp_path: Path) -> None:
    with hold_lock(tmp_path, what="cache", name="shard-0"), hold_lock(tmp_path, what="cache", name="shard-1"):
        pass
    with pytest.raises(RuntimeError), hold_lock(tmp_path, what="cache"):
        raise RuntimeError("boom")
    with hold_lock(tmp_path, what="cache"):
        pass

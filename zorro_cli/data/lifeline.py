"""Helper processes die with the process that started them, also after ``kill -9`` of it.

Decode workers are forked by multiprocessing's fork server, not by the main process, so neither the
kernel's parent-death signal nor the pool notices the main process being killed: the fork server and
its workers lived on as orphans. :func:`die_with` gives a process a daemon thread that waits for the
main process to exit (on a pidfd, Linux >= 5.3; else by polling once a second) and then ends it.

The fork server gets its thread when it imports this module as a preload (the main process names
itself in :data:`ENV` while starting it, :func:`announced`); a worker, in its initializer (threads do
not survive the fork server's ``fork``).
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

ENV = "ZORRO_LIFELINE_PID"  # the main process's pid, for the fork server (which inherits the environment)
POLL_S = 1.0


def _wait_for_exit(pid: int) -> None:
    """Block until process ``pid`` has exited."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, other OS), or the process is gone already
        fd = None
    if fd is not None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # a pidfd turns readable when its process exits
        poller.poll()
        return
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # alive, owned by someone else (cannot be ours: treat as alive)
            pass
        time.sleep(POLL_S)


def die_with(pid: int) -> None:
    """End this process (``os._exit(1)``, no clean-up: its parent is gone) once process ``pid`` exits."""
    if pid == os.getpid():
        return

    def watch() -> None:
        _wait_for_exit(pid)
        os._exit(1)

    threading.Thread(target=watch, name=f"die-with-{pid}", daemon=True).start()


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block (what a process started in it inherits), restored
    after, so later subprocesses do not inherit them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def announced(**values: str) -> AbstractContextManager[None]:
    """Name this process, for the block, as the one that helpers started in it must die with (see
    :data:`ENV`), with any other ``values`` those helpers should inherit; see :func:`environment`."""
    return environment({ENV: str(os.getpid()), **values})


def _preload() -> None:
    """At import in a process that :func:`announce` named another process for (the fork server)."""
    text = os.environ.get(ENV, "")
    if text.isdigit() and int(text) != os.getpid():
        die_with(int(text))


_preload()

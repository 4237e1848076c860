"""Where preprocessing's decode workers come from: one fork server per run, with the decode stack preloaded.

Starting the server is a fresh interpreter importing PyAV, numpy and libjpeg-turbo (~0.3 s on the 2-core
VM; no torch: the log-mel is numpy's, ``features.py``) before the first worker can exist. ``zorro
preprocess`` calls :func:`decode_context` first thing, before it imports the cache builder and reads the
manifest, so that cost runs beside the main process's own start-up instead of after it; the pool later finds
the server running (``ensure_running`` does not wait for the preload). The server and its workers run with
one BLAS/OpenMP thread each (one process per core: no nested thread pools).
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing import forkserver
from typing import Any

from .lifeline import announced

# lifeline first: a server whose run is killed ends itself even while it is still importing
PRELOAD = ["zorro_cli.data.lifeline", "zorro_cli.data.pipeline"]
# read by the BLAS and OpenMP libraries when they load: one thread per decode process
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def decode_context() -> Any:
    """The multiprocessing context of the decode pools: the fork server (started now if it is not
    running, and dying with this process: ``lifeline.py``), or spawn where the platform has none."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    with announced(**ONE_THREAD):
        forkserver.ensure_running()
    return ctx

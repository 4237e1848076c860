"""What an evaluation request will hold in memory, checked before anything is allocated.

``zorro evaluate --clips K --crops C --batch-size B`` stacks ``B x K x C`` views of every input into
one float32 batch. A request that cannot fit (``--clips 1000000`` was OOM-killed at 22 GB) is refused
in one line first: the flags against their ranges (the ``eval`` section's table), then one batch's
input tensors against the memory free on the device that will hold them.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import torch

from ..data.inputs import ModelInputs
from ..errors import UsageError
from ..ranges import range_problems
from ..recipes.sections import EVAL_RANGES

HEADROOM = 2  # the DataLoader's collate holds the views once more while stacking them


def check_flags(*, clips: int, batch_size: int) -> None:
    """``UsageError`` naming the flag when ``--clips`` or ``--batch-size`` is out of range."""
    table = {k: EVAL_RANGES[k] for k in ("clips", "batch_size")}
    problems = range_problems(SimpleNamespace(clips=clips, batch_size=batch_size), table)
    if problems:
        raise UsageError("; ".join(f"--{key.replace('_', '-')}: {msg}"
                                   for key, _, msg in (p.partition(": ") for p in problems)))


def batch_bytes(inputs: ModelInputs, n_mels: int, read: Sequence[str], views: int, batch_size: int) -> int:
    """Bytes of one batch's float32 inputs: ``B x V`` log-mels ``[F, A]`` and frame stacks ``[T, 3, H, W]``."""
    h, w = (inputs.image_size, inputs.image_size) if isinstance(inputs.image_size, int) else inputs.image_size
    per_view = (n_mels * inputs.audio_frames if "audio" in read else 0) + \
        (inputs.frames * 3 * h * w if "video" in read else 0)
    return 4 * per_view * views * batch_size


def available_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on ``device`` (a GPU's free memory; the host's ``MemAvailable``);
    None when it cannot be told."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(need: int, available: int | None, request: str) -> None:
    """``UsageError`` when ``HEADROOM x need`` bytes exceed ``available`` (nothing when unknown)."""
    if available is not None and HEADROOM * need > available:
        raise UsageError(f"{request}: one batch of inputs needs {HEADROOM * need / 2**30:.1f} GiB, "
                         f"{available / 2**30:.1f} GiB is free; lower --batch-size or --clips")

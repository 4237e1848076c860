"""Shared helpers for the benchmark scripts: interleaved timing, FLOP counting, matmul peak."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_side_by_side(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2,
                      device: torch.device | None = None) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved (A B A B ...) so drift hits all alike."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call as counted by ``torch.utils.flop_counter`` (matmuls, convs, SDPA)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None,
                reps: int = 10) -> float:
    """Measured FLOP/s of a square matmul, the machine's practical peak for dense work (n 8192 on a GPU)."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_side_by_side({"mm": lambda: a @ b}, reps=reps, warmup=2, device=device)["mm"]
    return 2 * n**3 / t


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")


def pick_device(arg: str) -> torch.device:
    if arg == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(arg)

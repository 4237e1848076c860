"""Deterministic, resumable, world-size-invariant batch order.

Epoch ``e`` uses one permutation of the clip indices drawn from ``seed + e``. The *global* batch ``j``
(``batch * world`` clips) is the same slice of it whatever the number of processes; process ``r`` takes
the ``r``-th ``batch``-sized part. So one process with batch 2B sees exactly the clips two processes with
batch B see together, and a resumed run continues at the batch where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    """The clip order of one epoch (pure function of ``n``, ``seed``, ``epoch``)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


class ShardedBatchSampler(Sampler[list[int]]):
    """Yields this process's index lists for one epoch, starting at global batch ``start``.

    Incomplete global batches at the end of an epoch are dropped (every process must step together).
    """

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int, epoch: int = 0,
                 start: int = 0, shuffle: bool = True) -> None:
        if batch * world > n:
            raise ValueError(f"global batch {batch} x {world} processes exceeds the {n} clips available")
        self.n, self.batch, self.world, self.rank = n, batch, world, rank
        self.seed, self.epoch, self.start, self.shuffle = seed, epoch, start, shuffle

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch * self.world)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else list(range(self.n))
        g = self.batch * self.world
        for j in range(self.start, self.batches_per_epoch()):
            lo = j * g + self.rank * self.batch
            yield order[lo:lo + self.batch]

"""``benchmarks/evaluate.py`` compares like with like: the forward side runs exactly the views ``evaluate``
runs, and both sides are timed in the same run (the figures themselves are in benchmarks/README.md)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import evaluate as bench  # noqa: E402


def test_the_benchmark_times_the_same_views_on_both_sides(tmp_path: Path) -> None:
    cache, ckpt, n = bench.build(tmp_path, "tiny", 8, decode_workers=0)
    med, views = bench.measure(cache, ckpt, crops=3, batch_size=3, workers=[0], rounds=1)
    assert n == 4 and views == {"forward": 12, "evaluate w0": 12}  # 4 test clips x 3 crops on both sides
    assert set(med) == {"forward", "evaluate w0"} and all(math.isfinite(v) and v > 0 for v in med.values())


def test_the_training_side_runs_full_batches_of_training_clips(tmp_path: Path) -> None:
    """``--train``: fine-tuning steps of the same model over full batches of the training split (the rate
    the GPU target compares ``evaluate`` with), timed in the same interleaved rounds."""
    cache, ckpt, _ = bench.build(tmp_path, "tiny", 16, decode_workers=0)
    run, clips = bench.training_alone(ckpt, cache, batch_size=3)
    assert clips == 6  # 8 training clips in full batches of 3
    run()
    med, views = bench.measure(cache, ckpt, crops=1, batch_size=3, workers=[0], rounds=1, train=True)
    assert views["train"] == 6 and views["forward"] == views["evaluate w0"] == 8
    assert set(med) == {"forward", "train", "evaluate w0"} and all(math.isfinite(v) and v > 0 for v in med.values())

"""`zorro evaluate` time vs the model's forward time alone on the same clips, side by side in one run.

    python benchmarks/evaluate.py [--recipe small] [--clips 192] [--crops 3] [--workers 0 1] [--rounds 5]

1. A synthetic audio-visual dataset (real MP4/MKV/AVI/WebM files) preprocessed with the recipe's settings,
   and an untrained model of the recipe's size saved as a run would save it (forward time does not depend
   on the weights).
2. Side by side, interleaved (forward, evaluate per worker count, forward, ...), ``--rounds`` times:
   - forward alone: the model over the same views (clips x crops), batches already in memory;
   - ``evaluate.run`` end to end, in this process: model load, cache open, dataset, DataLoader with
     ``--workers`` processes, JPEG decode, crops, log-mel windows, forward, metrics, the table.
3. Prints the median seconds of each and the ratio evaluate / forward (target: within 1.3x on a CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zorro_cli.commands import evaluate  # noqa: E402
from zorro_cli.data.build import Job, preprocess  # noqa: E402
from zorro_cli.data.cache import open_cache  # noqa: E402
from zorro_cli.data.dataset import ClipDataset, collate  # noqa: E402
from zorro_cli.data.synth import make_synthetic_dataset  # noqa: E402
from zorro_cli.model import save_pretrained  # noqa: E402
from zorro_cli.model.zorro import Zorro  # noqa: E402
from zorro_cli.recipes import load_recipe  # noqa: E402
from zorro_cli.train.setup import build_model_config, model_inputs  # noqa: E402


def build(folder: Path, recipe_name: str, clips: int, decode_workers: int = 2) -> tuple[Path, Path, int]:
    """``(cache, checkpoint, clips in the test split)`` for the recipe, made under ``folder``."""
    recipe = load_recipe(recipe_name)
    make_synthetic_dataset(folder / "media", num_classes=4, clips_per_class=max(2, clips // 4), seconds=3.0,
                           test_share=0.5, silent_clips=0,
                           fps=8, size=(96, 128))
    preprocess(recipe.preprocess, Job((folder / "media" / "manifest.csv",), "generic", folder / "media",
                                      folder / "cache", workers=decode_workers, plain=True))
    cache = open_cache(folder / "cache")
    torch.manual_seed(0)
    model = Zorro(build_model_config(recipe, "finetune", int(cache.settings["n_mels"]), len(cache.label_names)))
    save_pretrained(model, folder / "ckpt", extra={"labels": cache.label_names, "precision": recipe.train.precision,
                                                   **model_inputs(recipe, cache).to_config()})
    return folder / "cache", folder / "ckpt", len(cache.clip_ids("test"))


def forward_alone(checkpoint: Path, cache: Path, crops: int, batch_size: int) -> tuple[Callable[[], None], int]:
    """``(run, views)``: a function that runs the model over every test clip's views (the batches built
    beforehand, as ``evaluate`` batches them), and how many views that is."""
    from zorro_cli.data.inputs import ModelInputs
    from zorro_cli.model import load_pretrained
    from zorro_cli.model.pretrained import read_model_config

    model = load_pretrained(checkpoint).eval()
    ds = ClipDataset.from_inputs(cache, ModelInputs.from_config(read_model_config(checkpoint)[1]), "test", "eval",
                                 eval_crops=crops)
    batches = [collate([ds[i] for i in range(s, min(s + batch_size, len(ds)))]) for s in range(0, len(ds), batch_size)]
    inputs = [(b["audio"].flatten(0, 1), b["video"].flatten(0, 1)) for b in batches]

    @torch.no_grad()
    def run() -> None:
        for audio, video in inputs:
            model(audio=audio, video=video)

    return run, sum(len(a) for a, _ in inputs)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(cache: Path, ckpt: Path, crops: int, batch_size: int, workers: list[int],
            rounds: int) -> tuple[dict[str, float], dict[str, int]]:
    """Median seconds of the forward alone and of ``evaluate`` per worker count (interleaved rounds,
    after one warm-up of each), and the views each side ran: ``({name: s}, {name: views})``."""
    forward, views = forward_alone(ckpt, cache, crops, batch_size)
    counted = {"forward": views}

    def evaluate_with(w: int) -> None:
        with contextlib.redirect_stderr(io.StringIO()):  # the table and progress lines
            res = evaluate.run(checkpoint=ckpt, data=cache, split="test", crops=crops, batch_size=batch_size,
                               workers=w)
        counted[f"evaluate w{w}"] = res["num_clips"] * res["views"]

    forward()  # warm-up: first-call allocations, thread pools, imports on both sides
    for w in workers:
        evaluate_with(w)
    times: dict[str, list[float]] = {"forward": [], **{f"evaluate w{w}": [] for w in workers}}
    for _ in range(rounds):
        times["forward"].append(timed(forward))
        for w in workers:
            times[f"evaluate w{w}"].append(timed(lambda w=w: evaluate_with(w)))
    return {k: statistics.median(v) for k, v in times.items()}, counted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="small")
    ap.add_argument("--clips", type=int, default=192, help="synthetic clips (half of them in the test split)")
    ap.add_argument("--crops", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="keep the media, cache and checkpoint here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache, ckpt, n = build(args.out or Path(tmp), args.recipe, args.clips)
        med, views = measure(cache, ckpt, args.crops, args.batch_size, args.workers, args.rounds)
    print(f"recipe {args.recipe}: {n} test clips x {args.crops} crops = {views['forward']} views, batch "
          f"{args.batch_size} clips, torch threads {torch.get_num_threads()}, {args.rounds} rounds (median)")
    print(f"{'':>14} {'seconds':>8} {'clips/s':>8} {'x forward':>9}")
    for k, v in med.items():
        print(f"{k:>14} {v:8.3f} {n / v:8.1f} {v / med['forward']:9.2f}")


if __name__ == "__main__":
    main()

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
4. With ``--train``, also a fine-tuning step of the same model (supervised loss, AdamW, the run's
   precision) over the same number of clips per batch, one view a clip as training reads them, and the
   issue's GPU target: ``evaluate`` clips/s at ``--crops`` crops against the training clips/s (>= 1).

On a GPU (``gpu_run.sh``) everything runs on the device in the precision the run trained in:
``python benchmarks/evaluate.py --recipe audioset --clips 128 --batch-size 32 --workers 8 --train``.
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


def device_and_dtype(checkpoint: Path) -> tuple[torch.device, torch.dtype | None]:
    """Where and in which autocast precision ``evaluate`` runs this checkpoint (the GPU when there is one;
    the precision the run trained in), so that every side of the comparison runs the same way."""
    from zorro_cli.evaluation.predict import autocast_dtype
    from zorro_cli.model.pretrained import read_model_config

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return device, autocast_dtype("auto", read_model_config(checkpoint)[1].get("precision"))


def _batches(checkpoint: Path, cache: Path, split: str, mode: str, batch_size: int,
             crops: int = 1) -> list[dict[str, torch.Tensor]]:
    from zorro_cli.data.inputs import ModelInputs
    from zorro_cli.model.pretrained import read_model_config

    ds = ClipDataset.from_inputs(cache, ModelInputs.from_config(read_model_config(checkpoint)[1]), split, mode,
                                 eval_crops=crops)
    return [collate([ds[i] for i in range(s, min(s + batch_size, len(ds)))]) for s in range(0, len(ds), batch_size)]


def forward_alone(checkpoint: Path, cache: Path, crops: int, batch_size: int) -> tuple[Callable[[], None], int]:
    """``(run, views)``: a function that runs the model over every test clip's views (the batches built
    beforehand, as ``evaluate`` batches them, already on the device), and how many views that is."""
    from zorro_cli.evaluation.predict import autocast
    from zorro_cli.model import load_pretrained

    device, dtype = device_and_dtype(checkpoint)
    model = load_pretrained(checkpoint).to(device).eval()
    inputs = [(b["audio"].flatten(0, 1).to(device), b["video"].flatten(0, 1).to(device))
              for b in _batches(checkpoint, cache, "test", "eval", batch_size, crops)]

    @torch.no_grad()
    def run() -> None:
        for audio, video in inputs:
            with autocast(device, dtype):
                model(audio=audio, video=video)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run, sum(len(a) for a, _ in inputs)


def training_alone(checkpoint: Path, cache: Path, batch_size: int) -> tuple[Callable[[], None], int]:
    """``(run, clips)``: fine-tuning steps of the checkpoint's model (``SupervisedObjective``, AdamW fused on
    CUDA, the run's precision) over the training split in batches of ``batch_size`` clips, one augmented
    view a clip, as ``zorro finetune`` reads them (batches made beforehand, on the device)."""
    from zorro_cli.evaluation.predict import autocast
    from zorro_cli.model import load_pretrained
    from zorro_cli.train.objectives import SupervisedObjective

    device, dtype = device_and_dtype(checkpoint)
    model = load_pretrained(checkpoint).to(device).train()
    objective = SupervisedObjective(model, multilabel=False, head_weights={})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    batches = [{k: b[k].to(device) for k in ("audio", "video", "label")}
               for b in _batches(checkpoint, cache, "train", "train", batch_size)]
    batches = [b for b in batches if len(b["label"]) == batch_size] or batches  # full batches, as training

    def run() -> None:
        for b in batches:
            with autocast(device, dtype):
                loss = objective(b["audio"], b["video"], b["label"])["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run, sum(len(b["label"]) for b in batches)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(cache: Path, ckpt: Path, crops: int, batch_size: int, workers: list[int],
            rounds: int, train: bool = False) -> tuple[dict[str, float], dict[str, int]]:
    """Median seconds of the forward alone, of ``evaluate`` per worker count and (``train``) of fine-tuning
    steps (interleaved rounds, after one warm-up of each), and the views (clips, for training) each side
    ran: ``({name: s}, {name: views})``."""
    forward, views = forward_alone(ckpt, cache, crops, batch_size)
    counted = {"forward": views}
    sides: dict[str, Callable[[], None]] = {"forward": forward}
    if train:
        sides["train"], counted["train"] = training_alone(ckpt, cache, batch_size)

    def evaluate_with(w: int) -> None:
        with contextlib.redirect_stderr(io.StringIO()):  # the table and progress lines
            res = evaluate.run(checkpoint=ckpt, data=cache, split="test", crops=crops, batch_size=batch_size,
                               workers=w)
        counted[f"evaluate w{w}"] = res["num_clips"] * res["views"]

    for side in sides.values():  # warm-up: first-call allocations, thread pools, imports, autotuning
        side()
    for w in workers:
        evaluate_with(w)
    times: dict[str, list[float]] = {**{k: [] for k in sides}, **{f"evaluate w{w}": [] for w in workers}}
    for _ in range(rounds):
        for name, side in sides.items():
            times[name].append(timed(side))
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
    ap.add_argument("--train", action="store_true", help="also time fine-tuning steps (the GPU target)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache, ckpt, n = build(args.out or Path(tmp), args.recipe, args.clips)
        device, dtype = device_and_dtype(ckpt)
        med, views = measure(cache, ckpt, args.crops, args.batch_size, args.workers, args.rounds, args.train)
    print(f"recipe {args.recipe}: {n} test clips x {args.crops} crops = {views['forward']} views, batch "
          f"{args.batch_size} clips, on {device} ({dtype or 'fp32'}), torch threads {torch.get_num_threads()}, "
          f"{args.rounds} rounds (median)")
    print(f"{'':>14} {'seconds':>8} {'clips/s':>8} {'x forward':>9}")
    for k, v in med.items():
        clips, ratio = (views["train"], "") if k == "train" else (n, f"{v / med['forward']:9.2f}")
        print(f"{k:>14} {v:8.3f} {clips / v:8.1f} {ratio}")
    if args.train:
        rate = views["train"] / med["train"]
        for k in (k for k in med if k.startswith("evaluate")):
            print(f"{k} at {args.crops} crops vs training: {n / med[k] / rate:.2f}x the training clips/s "
                  "(GPU target >= 1)")


if __name__ == "__main__":
    main()

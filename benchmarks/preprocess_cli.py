"""`zorro preprocess` as a user runs it (a fresh process, start-up included) vs a 2-process PyAV decode floor.

    python benchmarks/preprocess_cli.py [--media ../shared/data/real_videos] [--repeat 5] [--rounds 3]
                                        [--recipe audioset] [--out /tmp/zorro-bench-cli]

Input: the shared real files that have both audio and video, each listed ``--repeat`` times under other
names (hard links or copies). Side by side, interleaved, ``--rounds`` times, for 1 and 2 workers:
- floor: a fresh pool of W processes decodes every frame of the same streams with PyAV, nothing else (no
  interpreter start-up: a pool of the benchmark process, forked from a warm forkserver);
- CLI: ``python -m zorro_cli preprocess --recipe R --workers W ...`` in a fresh interpreter, timed from
  the launch to the exit, into an empty folder.
Prints the median ratio CLI / floor in clips/s and the 1 -> 2 worker scaling, and where the CLI's time
goes: interpreter start-up and imports (``python -c "import zorro_cli.commands.preprocess"``), planning,
decoding (pool start included) and everything after (index, summary, exit), from the cache's
``summary.json`` timings.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from preprocess import floor, make_media, warm_up  # noqa: E402


def both_streams(media: Path) -> list[str]:
    """The files of ``media``'s MANIFEST.csv that have audio and video."""
    with (media / "MANIFEST.csv").open(newline="") as fh:
        return [r["file"] for r in csv.DictReader(fh) if r["has_audio"] == "1" and int(r["n_video_streams"]) > 0]


def cli_run(manifest: Path, media: Path, out: Path, workers: int, recipe: str) -> tuple[float, dict]:
    """Wall seconds of one ``zorro preprocess`` in a fresh interpreter, and its summary timings."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "zorro_cli", "preprocess", "--format", "generic", "--manifest", str(manifest),
           "--media-root", str(media), "--out", str(out), "--recipe", recipe, "--workers", str(workers)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"preprocess failed: {res.stderr[-2000:]}")
    return wall, json.loads((out / "summary.json").read_text())["timings"]


def import_time() -> float:
    """Seconds for a fresh interpreter to import the preprocess verb (what every CLI run pays first)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import zorro_cli.cli, zorro_cli.commands.preprocess"], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "data" / "real_videos")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--recipe", default="audioset")
    ap.add_argument("--out", type=Path, default=Path("/tmp/zorro-bench-cli"))
    args = ap.parse_args()
    rel = make_media(args.media, args.out / "media", args.repeat, both_streams(args.media))
    manifest = args.out / "manifest.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},x\n" for p in rel))
    paths = [str(args.out / "media" / p) for p in rel]
    warm_up()
    times: dict[str, list[float]] = {k: [] for k in ("floor1", "cli1", "floor2", "cli2", "import")}
    parts: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.rounds):
        times["import"].append(import_time())
        for w in (1, 2):
            times[f"floor{w}"].append(floor(paths, w))
            wall, timings = cli_run(manifest, args.out / "media", args.out / f"cache{w}", w, args.recipe)
            times[f"cli{w}"].append(wall)
            parts[w].append({**timings, "wall": wall})
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(paths)
    print(f"{n} clips ({n // args.repeat} files with audio and video x {args.repeat}), recipe {args.recipe}, "
          f"median of {args.rounds} rounds")
    print("| workers | floor (clips/s) | CLI end to end (clips/s) | CLI / floor |")
    print("|---|---|---|---|")
    for w in (1, 2):
        print(f"| {w} | {n / med[f'floor{w}']:.2f} ({med[f'floor{w}']:.1f} s) | {n / med[f'cli{w}']:.2f} "
              f"({med[f'cli{w}']:.1f} s) | {med[f'floor{w}'] / med[f'cli{w}']:.2f} |")
    print(f"scaling 1 -> 2 workers: CLI {med['cli1'] / med['cli2']:.2f}x, floor {med['floor1'] / med['floor2']:.2f}x")
    print("where the CLI's seconds go (median): | workers | start-up + imports | plan | decode (pool start "
          "included) | rest (index, summary, exit) |")
    for w in (1, 2):
        plan = statistics.median(p["plan_s"] for p in parts[w])
        proc = statistics.median(p["process_s"] for p in parts[w])
        rest = med[f"cli{w}"] - med["import"] - plan - proc
        print(f"| {w} | {med['import']:.2f} | {plan:.2f} | {proc:.2f} | {rest:.2f} |")


if __name__ == "__main__":
    main()

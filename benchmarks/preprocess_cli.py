"""`zorro preprocess` as a user runs it (a fresh process, start-up included) vs a 2-process PyAV decode floor.

    python benchmarks/preprocess_cli.py [--media ../shared/data/real_videos] [--repeat 5] [--rounds 3]
                                        [--recipe audioset] [--out /tmp/zorro-bench-cli] [--before DIR]

Input: the shared real files that have both audio and video, each listed ``--repeat`` times under other
names (hard links or copies). Side by side, interleaved, ``--rounds`` times, for 1 and 2 workers:
- floor: a fresh pool of W processes decodes every frame of the same streams with PyAV, nothing else (no
  interpreter start-up: a pool of the benchmark process, forked from a warm forkserver);
- CLI: ``python -m zorro_cli preprocess --recipe R --workers W ...`` in a fresh interpreter, timed from
  the launch to the exit, into an empty folder;
- with ``--before DIR`` (another checkout, e.g. ``git worktree add /tmp/before main``): the same CLI run
  from that checkout's code, interleaved with this one's.
Prints the median ratio CLI / floor in clips/s and the 1 -> 2 worker scaling, and where each CLI run's
time went, measured in that run (median): start-up (launch until ``preprocess()`` starts: interpreter,
imports, Typer, recipe), plan, decode (pool start until the last clip's result is in the main process),
after the last result (last shard closed, pool shut down, index and summary written) and exit (after
the final line, until the process is gone). The stage edges come from the run's stderr lines, time-
stamped here as they arrive, and its ``summary.json`` timings (``plan_s``, ``process_s``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
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


def cli_run(manifest: Path, media: Path, out: Path, workers: int, recipe: str,
            root: Path = ROOT) -> tuple[float, dict[str, float]]:
    """Wall seconds of one ``zorro preprocess`` (the code in ``root``) in a fresh interpreter, and its stages."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "zorro_cli", "preprocess", "--format", "generic", "--manifest", str(manifest),
           "--media-root", str(media), "--out", str(out), "--recipe", recipe, "--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.stderr is not None
    lines = [(time.perf_counter(), line) for line in proc.stderr]  # each stamped as it arrives
    wall = time.perf_counter() - t0
    if proc.wait() != 0:
        raise SystemExit(f"preprocess failed: {''.join(line for _, line in lines)[-2000:]}")
    t_last = next(t for t, line in lines if re.match(r"preprocess: (\d+)/\1 clips", line)) - t0
    t_end = next(t for t, line in lines if line.startswith("cached ")) - t0
    timings = json.loads((out / "summary.json").read_text())["timings"]
    t_proc = t_end - timings["process_s"]  # index and summary (~0.03 s) count as after the last result
    return wall, {"start-up": t_proc - timings["plan_s"], "plan": timings["plan_s"], "decode": t_last - t_proc,
                  "after last result": t_end - t_last, "exit": wall - t_end}


STAGES = ("start-up", "plan", "decode", "after last result", "exit")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "data" / "real_videos")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--recipe", default="audioset")
    ap.add_argument("--out", type=Path, default=Path("/tmp/zorro-bench-cli"))
    ap.add_argument("--before", type=Path, help="another checkout whose CLI runs beside this one's")
    args = ap.parse_args()
    rel = make_media(args.media, args.out / "media", args.repeat, both_streams(args.media))
    manifest = args.out / "manifest.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},x\n" for p in rel))
    paths = [str(args.out / "media" / p) for p in rel]
    warm_up()
    codes = {"now": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    times: dict[str, list[float]] = {}
    parts: dict[str, list[dict[str, float]]] = {}
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for _ in range(args.rounds):
        for w in (1, 2):
            times.setdefault(f"floor{w}", []).append(floor(paths, w))
            for code, root in codes.items():
                wall, stages = cli_run(manifest, args.out / "media", args.out / f"cache{w}", w, args.recipe, root)
                times.setdefault(f"{code}{w}", []).append(wall)
                parts.setdefault(f"{code}{w}", []).append(stages)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(paths)
    print(f"{n} clips ({n // args.repeat} files with audio and video x {args.repeat}), recipe {args.recipe}, "
          f"median of {args.rounds} rounds")
    print("| code | workers | floor (clips/s) | CLI end to end (clips/s) | CLI / floor |")
    print("|---|---|---|---|---|")
    for code in codes:
        for w in (1, 2):
            print(f"| {code} | {w} | {n / med[f'floor{w}']:.2f} ({med[f'floor{w}']:.1f} s) | "
                  f"{n / med[f'{code}{w}']:.2f} ({med[f'{code}{w}']:.1f} s) | "
                  f"{med[f'floor{w}'] / med[f'{code}{w}']:.2f} |")
        print(f"| {code} | 1 -> 2 | {med['floor1'] / med['floor2']:.2f}x | {med[f'{code}1'] / med[f'{code}2']:.2f}x | |")
    print(f"where the CLI's seconds go (median of each stage, measured in the run): | code | workers | "
          f"{' | '.join(STAGES)} |")
    for code in codes:
        for w in (1, 2):
            cells = " | ".join(f"{statistics.median(p[s] for p in parts[f'{code}{w}']):.2f}" for s in STAGES)
            print(f"| {code} | {w} | {cells} |")
    print("every round (s): " + "; ".join(f"{k} " + " ".join(f"{x:.1f}" for x in v) for k, v in times.items()))


if __name__ == "__main__":
    main()

"""Preprocessing throughput vs the PyAV decode-only floor, worker scaling, cache read speed, bytes per clip.

    python benchmarks/preprocess.py [--media ../shared/data/real_videos] [--repeat 3] [--out /tmp/bench]

1. Floor: PyAV decodes the same streams of the same files (every video and audio frame, one decoder
   thread, nothing else), in a pool of 1 and of 2 processes started the same way as preprocessing's.
2. ``zorro preprocess`` (paper-scale settings of recipes/audioset.yaml, whole files, no cap) with 1 and
   2 workers, end to end: plan, pool start, decode, resize, JPEG, resample, log-mel, HDF5, index. (It
   leaves non-reference frames that no output slot shows undecoded; the floor decodes every frame.)
   The real files are listed ``--repeat`` times (hard-linked under distinct names) so fixed costs weigh less.
3. Cache read with training augmentation at paper shapes (8 x 224^2 frames, 128 x 640 log-mel), 1
   DataLoader worker, batch 8.
4. Bytes per 10-s clip (JPEG frames + float16 log-mel) of the paper-scale cache.
5. Floor and preprocessing in this process by CPU time (robust when other jobs share the machine).
Runs A B A B ... (floor, preprocess) and reports the best of ``--rounds`` for each. Both run in pools
forked from one warm forkserver (see ``warm_up``): steady-state figures; the one-off start-up is printed.
What a user's run takes (a fresh ``zorro preprocess``: start-up, fork server and exit included, median of
rounds) is ``preprocess_cli.py``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zorro_cli.data.decode import pick_video_stream  # noqa: E402


def decode_only(path: str) -> int:
    """Decode every frame of the streams preprocessing reads; returns the frame count."""
    n = 0
    with av.open(path, metadata_errors="ignore") as c:
        v = pick_video_stream(c)
        a = c.streams.audio[0] if c.streams.audio else None
        if v is not None:
            v.thread_type = "AUTO"
            v.codec_context.thread_count = 1
        for packet in c.demux([s for s in (v, a) if s is not None]):
            n += len(packet.decode())
    return n


def warm_up() -> float:
    """Start preprocessing's forkserver (it preloads PyAV, numpy, simplejpeg) once; returns seconds.

    Every pool below then forks from the same warm server, so floor and preprocessing pay the same
    (small) pool start and the figures are steady-state throughputs; a CLI run pays this once."""
    from zorro_cli.data import parallel
    from zorro_cli.data.media import ClipTask
    from zorro_cli.recipes import load_recipe

    t0 = time.perf_counter()
    with parallel._pool(1, load_recipe("audioset").preprocess) as pool:
        pool.submit(parallel._run, ClipTask("x", "x", "/nonexistent", (), "x")).result()
    return time.perf_counter() - t0


def floor(paths: list[str], workers: int) -> float:
    """Seconds for a fresh pool of ``workers`` processes to decode ``paths``."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
        sum(pool.map(decode_only, paths))
    return time.perf_counter() - t0


def make_media(src: Path, dst: Path, repeat: int, names: list[str] | None = None) -> list[str]:
    """``repeat`` hard-linked (else copied) copies of ``names`` (default: every media file in ``src``) under
    ``dst/r<k>/``; relative paths. Not symbolic links: those lead out of the media root, and preprocessing
    refuses them."""
    if names is None:
        names = sorted(p.name for p in src.iterdir() if p.suffix not in (".csv", ".tsv"))
    rel = []
    for k in range(repeat):
        (dst / f"r{k}").mkdir(parents=True, exist_ok=True)
        for name in names:
            link = dst / f"r{k}" / name
            if link.is_symlink():  # made by an earlier version of this script
                link.unlink()
            if not link.exists():
                try:
                    os.link(src / name, link)
                except OSError:
                    shutil.copyfile(src / name, link)
            rel.append(f"r{k}/{name}")
    return rel


def preprocess_run(manifest: Path, media: Path, out: Path, workers: int, clock=time.perf_counter) -> float:
    """Seconds (``clock``) of a whole ``preprocess`` run; ``workers=0`` runs in this process."""
    from zorro_cli.data.build import Job, preprocess
    from zorro_cli.recipes import load_recipe

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_recipe("audioset", ["preprocess.shard_size=32"]).preprocess
    t0 = clock()
    summary = preprocess(cfg, Job((manifest,), "generic", media, out, workers=workers, plain=True))
    assert summary["complete"]
    return clock() - t0


def cpu_seconds(manifest: Path, media: Path, out: Path, paths: list[str]) -> tuple[float, float]:
    """CPU seconds of this process for the floor and for preprocessing, both run in-process: a
    measure that other work on the machine disturbs much less than wall-clock time."""
    t0 = time.process_time()
    for p in paths:
        decode_only(p)
    floor_cpu = time.process_time() - t0
    return floor_cpu, preprocess_run(manifest, media, out, 0, time.process_time)


def read_speed(cache: Path, items: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    from zorro_cli.data.dataset import ClipDataset, collate

    torch.set_num_threads(1)
    ds = ClipDataset(cache, None, "train", audio_frames=640, frames=8, image_size=224, frame_stride=4)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=1, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0), persistent_workers=True)
    seen, t0 = 0, None
    while seen < items:
        for batch in loader:
            assert batch["video"].shape[1:] == (3, 8, 224, 224) and batch["audio"].shape[1:] == (1, 128, 640)
            if t0 is None:  # start the clock after the first batch (worker start-up)
                t0, seen = time.perf_counter(), 0
                continue
            seen += len(batch["clip_id"])
            if seen >= items:
                break
    return seen / (time.perf_counter() - t0)


def bytes_per_10s(cache: Path) -> tuple[float, float, float, int]:
    """Median JPEG, log-mel and total bytes per 10 s over clips >= 5 s with both modalities."""
    from zorro_cli.data.cache import open_cache

    c = open_cache(cache)
    jpeg, mel = [], []
    for r in c.index:
        if not (r.has_audio and r.has_video and r.duration_s >= 5):
            continue
        f = c._file(r.shard)
        spans = f["frame_spans"][r.frame_offset:r.frame_offset + r.n_frames]
        stored = {int(s): int(n) for s, n in spans}  # held frames are stored once
        jpeg.append(sum(stored.values()) * 10 / r.duration_s)
        mel.append(2 * r.audio_frames * c.settings["n_mels"] * 10 / r.duration_s)
    return statistics.median(jpeg), statistics.median(mel), statistics.median(
        [a + b for a, b in zip(jpeg, mel, strict=True)]), len(jpeg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "data" / "real_videos")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--read-items", type=int, default=96)
    ap.add_argument("--out", type=Path, default=Path("/tmp/zorro-bench-preprocess"))
    args = ap.parse_args()
    media = args.out / "media"
    rel = make_media(args.media, media, args.repeat)
    manifest = args.out / "manifest.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},x\n" for p in rel))
    paths = [str(media / p) for p in rel]
    n = len(paths)
    startup = warm_up()
    times: dict[str, list[float]] = {k: [] for k in ("floor1", "prep1", "floor2", "prep2")}
    for _ in range(args.rounds):
        for w in (1, 2):
            times[f"floor{w}"].append(floor(paths, w))
            times[f"prep{w}"].append(preprocess_run(manifest, media, args.out / f"cache{w}", w))
    best = {k: min(v) for k, v in times.items()}
    rate = {k: n / v for k, v in best.items()}
    print(f"{n} files ({len(rel) // args.repeat} real videos x {args.repeat}), best of {args.rounds} rounds; "
          f"one-off forkserver start-up (not included): {startup:.1f} s")
    print("| workers | decode-only floor (clips/s) | preprocess (clips/s) | preprocess / floor |")
    print("|---|---|---|---|")
    for w in (1, 2):
        print(f"| {w} | {rate[f'floor{w}']:.2f} ({best[f'floor{w}']:.1f} s) | {rate[f'prep{w}']:.2f} "
              f"({best[f'prep{w}']:.1f} s) | {rate[f'prep{w}'] / rate[f'floor{w}']:.2f} |")
    print(f"scaling 1 -> 2 workers: preprocess {rate['prep2'] / rate['prep1']:.2f}x, "
          f"floor {rate['floor2'] / rate['floor1']:.2f}x")
    floor_cpu, prep_cpu = cpu_seconds(manifest, media, args.out / "cache0", paths)
    print(f"in-process CPU time: floor {floor_cpu:.1f} s, preprocess {prep_cpu:.1f} s -> preprocess / floor "
          f"{floor_cpu / prep_cpu:.2f} (throughput ratio by CPU time)")
    jpeg, mel, total, count = bytes_per_10s(args.out / "cache1")
    print(f"bytes per 10-s clip (median of {count} clips >= 5 s with audio and video): JPEG {jpeg / 1e3:.0f} kB "
          f"+ log-mel {mel / 1e3:.0f} kB = {total / 1e3:.0f} kB")
    print(f"cache read, train augmentation, 8x224^2 + 128x640, 1 worker: "
          f"{read_speed(args.out / 'cache1', args.read_items):.1f} clips/s")


if __name__ == "__main__":
    main()

"""Memory stays flat as the number of clips grows: peak RSS of the main process and of the workers for a
dataset 16 times larger (same media listed under 16 names, hard-linked) grows by a few MB at most."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import resource, sys
from pathlib import Path
from zorro_cli.data.build import Job, preprocess
from zorro_cli.recipes import load_recipe
if __name__ == "__main__":
    manifest, root, out = map(Path, sys.argv[1:4])
    cfg = load_recipe("tiny", ["preprocess.shard_size=8", "preprocess.short_side=320", "preprocess.fps=12"]).preprocess
    s = preprocess(cfg, Job((manifest,), "generic", root, out, workers=2, plain=True))
    print(s["counts"]["cached"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_kb(synth_dir: Path, tmp: Path, copies: int) -> tuple[int, int, int, int]:
    """(clips cached, main peak RSS kB, largest worker peak RSS kB, kB of shards written) of one
    preprocessing run in a fresh process."""
    rows = list(csv.DictReader((synth_dir / "manifest.csv").open()))
    root = tmp / f"x{copies}"
    lines = ["path,label"]
    for k in range(copies):
        (root / f"r{k}").mkdir(parents=True)
        for r in rows:
            name = Path(r["path"]).name
            try:  # a hard link: a symbolic link out of --media-root is refused (issue 12)
                os.link(synth_dir / r["path"], root / f"r{k}" / name)
            except OSError:
                shutil.copyfile(synth_dir / r["path"], root / f"r{k}" / name)
            lines.append(f"r{k}/{name},{r['label']}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    (tmp / "probe.py").write_text(PROBE)
    proc = subprocess.run([sys.executable, str(tmp / "probe.py"), str(root / "manifest.csv"), str(root),
                           str(tmp / f"cache{copies}")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cached, main, workers = map(int, proc.stdout.split())
    cached_kb = sum(p.stat().st_size for p in (tmp / f"cache{copies}").rglob("*.h5")) // 1000
    return cached, main, workers, cached_kb


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_clips(synth_dir, tmp_path):
    small = peak_rss_kb(synth_dir, tmp_path, 1)
    large = peak_rss_kb(synth_dir, tmp_path, 16)
    assert (small[0], large[0]) == (24, 384)
    assert large[3] - small[3] > 48_000  # the extra clips carry > 48 MB: holding them would show
    assert large[1] - small[1] < 32_000, (small, large)  # main process: < 32 MB more for 360 more clips
    assert large[2] - small[2] < 32_000, (small, large)  # each worker: likewise

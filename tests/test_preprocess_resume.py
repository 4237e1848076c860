"""Resume after SIGKILL, --shard parts + merge, and worker count: all give the same cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.data import open_cache
from zorro_cli.data.build import Job, preprocess
from zorro_cli.data.index import merge_parts
from zorro_cli.recipes import load_recipe

ARRAYS = ("jpeg", "frame_spans", "logmel", "clips_json", "failures_json", "mel_sum", "mel_sumsq")


def run(synth_dir: Path, out: Path, workers: int = 0, shard: tuple[int, int] = (0, 1)) -> dict:
    cfg = load_recipe("tiny", ["preprocess.shard_size=3"]).preprocess
    return preprocess(cfg, Job((synth_dir / "manifest.csv",), "generic", synth_dir, out, workers, shard, plain=True))


def assert_same_cache(a: Path, b: Path) -> None:
    """Same index and failure report, byte-identical arrays in every shard, no temporary files left."""
    for name in ("index.csv", "failures.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name
    shards = sorted(p.name for p in (a / "shards").iterdir())
    assert shards == sorted(p.name for p in (b / "shards").iterdir())
    for name in shards:
        with h5py.File(a / "shards" / name, "r") as fa, h5py.File(b / "shards" / name, "r") as fb:
            for key in ARRAYS:
                x, y = fa[key][()], fb[key][()]
                assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), (name, key)
            assert dict(fa.attrs) == dict(fb.attrs)
    for root in (a, b):
        assert not [p for p in root.rglob("*") if ".tmp" in p.name], "temporary files left"
    ids = [line.split(",")[0] for line in (b / "index.csv").read_text().splitlines()[1:]]
    assert len(ids) == len(set(ids)), "duplicate clips"


@pytest.fixture(scope="module")
def reference(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "cache"
    summary = run(synth_dir, out)
    assert summary["complete"] and summary["counts"]["cached"] == 24 and summary["shards"] == 8
    return out


def test_two_workers_give_the_same_cache(synth_dir, reference, tmp_path):
    run(synth_dir, tmp_path / "c", workers=2)
    assert_same_cache(reference, tmp_path / "c")


def test_shard_parts_merged_equal_one_run(synth_dir, reference, tmp_path):
    parts = [tmp_path / "p0", tmp_path / "p1"]
    for i, part in enumerate(parts):
        summary = run(synth_dir, part, shard=(i, 2))
        assert not summary["complete"] and summary["part"] == f"{i}/2"
    assert sorted(p.name for p in (parts[1] / "shards").iterdir()) == [f"shard-{k:05d}.h5" for k in (1, 3, 5, 7)]
    r = CliRunner().invoke(app, ["preprocess", "--merge", str(parts[0]), str(parts[1]), "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert_same_cache(reference, tmp_path / "m")
    assert merge_parts([tmp_path / "m"], tmp_path / "m")["counts"]["cached"] == 24  # idempotent


def test_shard_parts_sharing_one_folder_finish_it(synth_dir, reference, tmp_path):
    assert not run(synth_dir, tmp_path / "c", shard=(1, 2))["complete"]
    assert run(synth_dir, tmp_path / "c", shard=(0, 2))["complete"]  # the last part writes the index
    assert_same_cache(reference, tmp_path / "c")


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(synth_dir, reference, tmp_path):
    out = tmp_path / "c"
    cmd = [sys.executable, "-m", "zorro_cli.cli", "preprocess", "--manifest", str(synth_dir / "manifest.csv"),
           "--media-root", str(synth_dir), "--out", str(out), "--recipe", "tiny", "--shard-size", "3",
           "--workers", "1"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "shards" / "shard-00001.h5").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = sorted((out / "shards").glob("shard-*.h5"))
    assert not (out / "index.csv").exists() and 2 <= len(done) < 8, "the kill did not land part-way"
    summary = run(synth_dir, out, workers=1)
    assert summary["complete"] and summary["timings"]["shards_skipped"] == len(done)
    assert_same_cache(reference, out)
    assert np.array_equal(np.loadtxt(out / "index.csv", dtype=str, delimiter=",", usecols=0, skiprows=1),
                          np.loadtxt(reference / "index.csv", dtype=str, delimiter=",", usecols=0, skiprows=1))


def test_rebuild_by_one_part_keeps_the_other_parts_shards(synth_dir, tmp_path):
    """``--rebuild`` with ``--shard I/N`` in a folder the parts share deletes only part I's shards."""
    out = tmp_path / "shared"
    for i in (0, 1):
        run(synth_dir, out, shard=(i, 2))
    assert (out / "index.csv").is_file()
    theirs = {p.name: p.read_bytes() for p in (out / "shards").iterdir() if int(p.name[6:11]) % 2 == 1}
    cfg = load_recipe("tiny", ["preprocess.shard_size=3", "preprocess.fps=2"]).preprocess
    job = Job((synth_dir / "manifest.csv",), "generic", synth_dir, out, 0, (0, 2), rebuild=True, plain=True)
    summary = preprocess(cfg, job)
    assert not summary["complete"] and not (out / "index.csv").exists()  # no longer a finished cache
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir() if int(p.name[6:11]) % 2 == 1} == theirs
    # part 1, rerun with the new settings, redoes its own shards (old fingerprint) and finishes the cache
    job = Job((synth_dir / "manifest.csv",), "generic", synth_dir, out, 0, (1, 2), plain=True)
    assert preprocess(cfg, job)["complete"]
    assert open_cache(out).settings["fps"] == 2.0 and len(open_cache(out).clip_ids()) == 24

"""Issue 12, the cache half: caches and ``zorro preprocess`` under bad rows, foreign folders, concurrent
writers, a full disk, corrupt shards, read-only folders and ``kill -9``. One test per case of the
issue's table (7, 8, 9, 11, 13, 14, 15, 16): what was run, the exit code, the one line, nothing lost.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from zorro_cli.cli import app
from zorro_cli.data import build, folder, open_cache
from zorro_cli.data.cache import CacheError
from zorro_cli.data.shards import ShardWriter


def zorro(*args: str | Path):
    return CliRunner().invoke(app, [*map(str, args)])


def one_line(result, code: int, pattern: str) -> str:
    """The result exited ``code`` and its stderr ends in its one ``error:`` line, which contains
    ``pattern`` (progress lines may come before it); no traceback."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error")]
    assert errors == lines[-1:] and lines[-1].startswith("error: ") and pattern in lines[-1], result.stderr
    assert "Traceback" not in result.output
    return lines[-1]


def failures(out: Path) -> dict[str, str]:
    with (out / "failures.csv").open(newline="", encoding="utf-8") as fh:
        return {r["path"]: r["reason"] for r in csv.DictReader(fh)}


def cached_paths(out: Path) -> list[str]:
    with (out / "index.csv").open(newline="", encoding="utf-8") as fh:
        return [r["path"] for r in csv.DictReader(fh)]


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (lock files aside): what "nothing lost" is checked against."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".zorro-")}


def media_root(tmp_path: Path, synth_dir: Path, n: int = 2) -> tuple[Path, Path]:
    """``tmp_path/root`` with ``n`` clips ``class0/c{i}.mp4`` and a manifest ``m.csv`` naming them."""
    root = tmp_path / "root"
    (root / "class0").mkdir(parents=True)
    for i in range(n):
        shutil.copy(synth_dir / "class0" / "class0_000.mp4", root / "class0" / f"c{i}.mp4")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(f"class0/c{i}.mp4,a\n" for i in range(n)))
    return root, manifest


def preprocess(manifest: Path, root: Path, out: Path, *extra: str):
    return zorro("preprocess", "--manifest", manifest, "--media-root", root, "--out", out, "--recipe", "tiny",
                 "--workers", "0", *extra)


def test_7_paths_outside_the_media_root_become_failure_rows(tmp_path, synth_dir):
    root, manifest = media_root(tmp_path, synth_dir, 1)
    shutil.copy(synth_dir / "class0" / "class0_000.mp4", tmp_path / "outside.mp4")
    (root / "class0" / "link.mp4").symlink_to(tmp_path / "outside.mp4")
    manifest.write_text("path,label\nclass0/c0.mp4,a\n../outside.mp4,a\nclass0/../../outside.mp4,a\n"
                        "class0/link.mp4,a\n")
    r = preprocess(manifest, root, tmp_path / "c")
    assert r.exit_code == 0 and "cached 1 of 4 clips (3 failed" in r.stderr, r.output
    assert cached_paths(tmp_path / "c") == ["class0/c0.mp4"]
    rows = failures(tmp_path / "c")
    for path in ("../outside.mp4", "class0/../../outside.mp4", "class0/link.mp4"):
        assert "resolves outside --media-root" in rows[path], rows


def test_8_a_folder_that_is_not_a_cache_is_never_written_or_deleted(tmp_path, synth_dir):
    root, manifest = media_root(tmp_path, synth_dir, 1)
    out = tmp_path / "thesis"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "thesis.txt").write_text("four years of work")
    (out / "summary.json").write_text('{"mine": true}')
    (out / "notes.tmp-1").write_text("draft")
    before = snapshot(out)
    for extra in ((), ("--rebuild",)):
        one_line(preprocess(manifest, root, out, *extra), 2, "is not a zorro cache (no cache.json)")
        assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["notes.tmp-1", "shards",
                                                                                      "summary.json"]
    # a real cache with a user's file inside: --rebuild deletes the cache's files only
    cache = tmp_path / "cache"
    assert preprocess(manifest, root, cache).exit_code == 0
    (cache / "shards" / "mine.txt").write_text("keep me")
    (cache / ".notes.tmp-1").write_text("keep me too")
    r = preprocess(manifest, root, cache, "--rebuild", "fps=2")
    assert r.exit_code == 0 and "cached 1 of 1" in r.stderr, r.output
    assert (cache / "shards" / "mine.txt").read_text() == "keep me"
    assert (cache / ".notes.tmp-1").read_text() == "keep me too"


def test_9_unreadable_rows_become_failure_rows(tmp_path, synth_dir):
    root, manifest = media_root(tmp_path, synth_dir, 1)
    (root / "class0" / "loop1.mp4").symlink_to("loop2.mp4")
    (root / "class0" / "loop2.mp4").symlink_to("loop1.mp4")
    long = "class0/" + "x" * 5000 + ".mp4"
    manifest.write_text(f"path,label\nclass0/c0.mp4,a\nclass0/loop1.mp4,a\n{long},a\n")
    r = preprocess(manifest, root, tmp_path / "c")
    assert r.exit_code == 0 and "cached 1 of 3 clips (2 failed" in r.stderr, r.output
    rows = failures(tmp_path / "c")
    assert rows["class0/loop1.mp4"] == "cannot resolve the media path (Too many levels of symbolic links)"
    assert rows[long] == "cannot look up the media file (File name too long)"
    # kinetics: a window of nan or inf seconds
    kin = tmp_path / "kin"
    (kin / "dance").mkdir(parents=True)
    shutil.copy(synth_dir / "class0" / "class0_000.mp4", kin / "dance" / "abc_000000_000001.mp4")
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\ndance,abc,0,1,train\n"
                                        "dance,abd,0,nan,train\ndance,abe,0,inf,train\n")
    r = zorro("preprocess", "--manifest", tmp_path / "train.csv", "--format", "kinetics", "--media-root", kin,
              "--out", tmp_path / "k", "--recipe", "tiny", "--workers", "0")
    assert r.exit_code == 0 and "cached 1 of 3 clips (2 failed" in r.stderr, r.output
    assert failures(tmp_path / "k") == {"train.csv:3": "time_end 'nan' is not a finite number",
                                        "train.csv:4": "time_end 'inf' is not a finite number"}


@pytest.mark.parametrize(("override", "line"), [
    ("train.lr=nan", "train.lr: expected a finite number, got nan"),
    ("train.seed=-1", "train.seed: expected in [0, 4294967295], got -1"),
    ("train.grad_clip=.nan", "train.grad_clip: expected a finite number, got nan"),
    ("train.lr=.inf", "train.lr: expected a finite number, got inf"),
    ("train.weight_decay=.inf", "train.weight_decay: expected a finite number, got inf"),
    ("model.temperature=.nan", "model.temperature: expected a finite number, got nan"),
    ("data.image_size=100000", "data.image_size: expected in [1, 2048], got 100000"),
    ("preprocess.min_coverage=.nan", "preprocess.min_coverage: expected a finite number, got nan"),
])
def test_11_every_recipe_value_is_checked(tmp_path, override, line):
    r = zorro("finetune", "--recipe", "tiny", "--data", tmp_path / "none", "--out", tmp_path / "run", override)
    assert one_line(r, 2, line) == f"error: override '{override}': {line}"
    assert not (tmp_path / "run").exists()


def test_11_evaluate_refuses_a_request_that_cannot_fit(tmp_path):
    r = zorro("evaluate", "--checkpoint", tmp_path / "none", "--data", tmp_path / "none", "--clips", "1000000")
    assert one_line(r, 2, "--clips") == "error: --clips: expected in [1, 64], got 1000000"


def test_13_a_second_preprocess_on_one_out_is_refused_and_parts_still_share(tmp_path, synth_dir, monkeypatch):
    root, manifest = media_root(tmp_path, synth_dir, 4)
    out, inner = tmp_path / "c", {}  # inner: the second command's result
    write_shards = build._write_shards

    def while_writing(*args, **kwargs):  # a second command, started while the first one writes shards
        if not inner:
            job = args[1]
            extra = () if job.shard == (0, 1) else ("--shard", "1/2")
            inner["r"] = preprocess(manifest, root, job.out, "shard_size=2", *extra)
        return write_shards(*args, **kwargs)

    monkeypatch.setattr(build, "_write_shards", while_writing)
    r = preprocess(manifest, root, out, "shard_size=2")
    assert r.exit_code == 0, r.output
    one_line(inner["r"], 2, f"{out}: this cache is in use by pid {os.getpid()}")
    assert len(cached_paths(out)) == 4
    # --shard I/N parts take a lock each: part 1 runs while part 0 writes, and the cache is complete
    inner.clear()
    r = preprocess(manifest, root, tmp_path / "p", "shard_size=2", "--shard", "0/2")
    assert r.exit_code == 0 and inner["r"].exit_code == 0, (r.output, inner["r"].output)
    assert sorted(cached_paths(tmp_path / "p")) == sorted(cached_paths(out))


def test_14_disk_full_is_one_line_and_the_finished_shards_stay(tmp_path, synth_dir, monkeypatch):
    root, manifest = media_root(tmp_path, synth_dir, 4)
    out, calls = tmp_path / "c", []
    real = folder.free_bytes

    def filling(path: Path) -> int:  # the disk fills up once two clips (shard 0) are written
        calls.append(path)
        return real(path) if len(calls) <= 2 else 4096

    monkeypatch.setattr(folder, "free_bytes", filling)
    line = one_line(preprocess(manifest, root, out, "shard_size=2"), 1, "disk full: 0.0 MiB free")
    assert "the finished shards are kept" in line
    kept = snapshot(out / "shards")
    assert list(kept) == ["shard-00000.h5"] and not (out / "index.csv").exists()
    # a write that fails with ENOSPC anyway (another process filled the disk): the same line
    monkeypatch.setattr(folder, "free_bytes", real)

    def no_space(self: ShardWriter) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.tmp))

    monkeypatch.setattr(ShardWriter, "close", no_space)
    one_line(preprocess(manifest, root, out, "shard_size=2"), 1, "disk full while writing")
    assert snapshot(out / "shards") == kept  # the unfinished shard's temporary is gone too
    monkeypatch.undo()
    r = preprocess(manifest, root, out, "shard_size=2")  # space freed: the run resumes
    assert r.exit_code == 0 and "cached 4 of 4" in r.stderr, r.output
    assert snapshot(out / "shards")["shard-00000.h5"] == kept["shard-00000.h5"]


def flip_byte(path: Path, dataset: str) -> None:
    """Flip one bit inside the first chunk of ``dataset`` in an HDF5 file."""
    with h5py.File(path, "r") as f:
        offset = f[dataset].id.get_chunk_info(0).byte_offset + 100
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0x10]))


def test_15_flipped_shard_bytes_are_detected_on_read(tmp_path, synth_dir):
    root, manifest = media_root(tmp_path, synth_dir, 1)
    assert preprocess(manifest, root, tmp_path / "c").exit_code == 0
    shard = tmp_path / "c" / "shards" / "shard-00000.h5"
    for dataset, read in (("jpeg", "frames"), ("logmel", "logmel")):
        original = shard.read_bytes()
        flip_byte(shard, dataset)
        cache = open_cache(tmp_path / "c")
        with pytest.raises(CacheError, match=r"shard-00000\.h5: corrupt or unreadable shard") as err:
            getattr(cache, read)(cache.clip_ids()[0])
        assert "\n" not in str(err.value)
        cache.close()
        shard.write_bytes(original)


def test_15_damaged_cache_files_are_one_line(tmp_path, synth_dir):
    root, manifest = media_root(tmp_path, synth_dir, 1)
    out = tmp_path / "c"
    assert preprocess(manifest, root, out).exit_code == 0
    for name, damage in (("summary.json", "{not json"), ("index.csv", "clip_id\nx\n"), ("cache.json", "[]")):
        original = (out / name).read_bytes()
        (out / name).write_text(damage)
        with pytest.raises(CacheError, match=rf"^{out / name}: cannot be read") as err:
            open_cache(out)
        assert "\n" not in str(err.value)
        (out / name).write_bytes(original)
    (out / "cache.json").write_text("[]")  # preprocess again: not a cache any more, refused, kept
    one_line(preprocess(manifest, root, out), 2, "is not a zorro cache")
    assert (out / "cache.json").read_text() == "[]"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_15_a_read_only_out_is_one_line(tmp_path, synth_dir):
    root, manifest = media_root(tmp_path, synth_dir, 1)
    out = tmp_path / "c"
    assert preprocess(manifest, root, out).exit_code == 0
    before = snapshot(out)
    out.chmod(0o555)
    try:
        one_line(preprocess(manifest, root, out, "--rebuild"), 2, f"--out: cannot write in {out}")
    finally:
        out.chmod(0o755)
    assert snapshot(out) == before


def test_15_a_read_only_file_system_is_one_line(tmp_path, synth_dir, monkeypatch):
    root, manifest = media_root(tmp_path, synth_dir, 1)
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    line = one_line(preprocess(manifest, root, tmp_path / "c"), 2, f"--out: cannot write in {tmp_path / 'c'}")
    assert "EROFS" in line


def test_16_stale_temporaries_are_cleaned_at_the_next_start(tmp_path, synth_dir):
    root, manifest = media_root(tmp_path, synth_dir, 2)
    out = tmp_path / "c"
    assert preprocess(manifest, root, out).exit_code == 0
    stale = [out / ".index.csv.tmp-otherhost-1", out / "shards" / ".shard-00000.h5.tmp-otherhost-2"]
    for p in stale:
        p.write_text("half written")
    (out / ".notes.tmp-1").write_text("not the cache's")
    assert preprocess(manifest, root, out).exit_code == 0
    assert not any(p.exists() for p in stale) and (out / ".notes.tmp-1").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc")
def test_16_decode_workers_die_with_a_killed_preprocess(tmp_path, synth_dir):
    proc = subprocess.Popen([sys.executable, "-m", "zorro_cli", "preprocess", "--manifest",
                             str(synth_dir / "manifest.csv"), "--media-root", str(synth_dir), "--out",
                             str(tmp_path / "c"), "--recipe", "tiny", "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        helpers = wait_for_workers(proc.pid, 2)  # the resource tracker, the fork server and its workers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = survivors(helpers)
    assert not left, f"orphaned helper processes {left} after kill -9 of preprocess"



@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads the process tree from /proc")
def test_16_a_run_refused_after_the_fork_server_started_leaves_no_helper(tmp_path, synth_dir):
    """The fork server starts before the manifest is read (so its imports overlap the main process's):
    a run refused after that must not leave it, or the resource tracker, behind."""
    proc = subprocess.Popen([sys.executable, "-m", "zorro_cli", "preprocess", "--manifest", str(tmp_path / "no.csv"),
                             "--media-root", str(synth_dir), "--out", str(tmp_path / "c"), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    helpers: list[int] = []
    while proc.poll() is None:
        helpers += [p for p in descendants(proc.pid) if p not in helpers]
        time.sleep(0.02)
    assert proc.returncode == 2 and "no such file" in proc.communicate()[1]
    assert helpers, "no fork server was started before the manifest was read"
    left = survivors(helpers)
    assert not left, f"helper processes {left} outlived a refused preprocess"


def survivors(helpers: list[int], wait_s: float = 30) -> list[int]:
    """The ``helpers`` still alive after up to ``wait_s`` seconds; they are killed (a failing test must not
    leave them behind)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and [p for p in helpers if alive(p)]:
        time.sleep(0.2)
    left = [p for p in helpers if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return left


def descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        ppid = parent(int(entry.name)) if entry.name.isdigit() else None
        if ppid is not None:
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def wait_for_workers(pid: int, n: int) -> list[int]:
    """All processes below ``pid`` once ``n`` of them are grandchildren (workers of the fork server)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = descendants(pid)
        if len(found) - len(children_of(pid, found)) >= n:
            return found
        time.sleep(0.1)
    raise AssertionError(f"preprocess started {descendants(pid)} helper processes, expected {n} workers")


def children_of(pid: int, pids: list[int]) -> list[int]:
    return [p for p in pids if parent(p) == pid]


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_15_a_corrupt_shard_met_in_a_dataloader_worker_is_still_one_line():
    """torch re-raises a worker's error with the worker's traceback in its message; the CLI shows the
    original one line."""
    from torch._utils import ExceptionWrapper

    from zorro_cli.cli import _one_line

    try:
        raise CacheError("c/shards/shard-00000.h5: corrupt or unreadable shard (filter failed)")
    except CacheError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(CacheError) as err:
        wrapped.reraise()
    assert "Traceback" in str(err.value)
    assert _one_line(err.value) == "c/shards/shard-00000.h5: corrupt or unreadable shard (filter failed)"

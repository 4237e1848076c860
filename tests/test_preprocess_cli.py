"""``zorro preprocess`` as a command: exit codes 0/1/2, one-line errors, never a traceback for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from zorro_cli.cli import app


def zorro(*args: str | Path):
    return CliRunner().invoke(app, ["preprocess", *map(str, args)])


def one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_usage_errors(tmp_path, synth_dir):
    m, root, out = synth_dir / "manifest.csv", synth_dir, tmp_path / "out"
    one_line_error(zorro("--manifest", tmp_path / "none.csv", "--media-root", root, "--out", out), "no such file")
    one_line_error(zorro("--manifest", m, "--format", "youtube", "--media-root", root, "--out", out),
                   "'youtube' is not one of 'generic', 'audioset'")
    one_line_error(zorro("--manifest", m, "--media-root", tmp_path / "nope", "--out", out), "--media-root")
    one_line_error(zorro("--manifest", m, "--media-root", root), "error: --out is required")
    one_line_error(zorro("--manifest", m, "--out", out), "error: --media-root is required")
    one_line_error(zorro("--manifest", m), "error: --out and --media-root are required")
    classy = tmp_path / "classy.csv"
    classy.write_text("path,class\nclass0/class0_000.mp4,a\n")
    one_line_error(zorro("--manifest", classy, "--media-root", root, "--out", out),
                   "column 'class' but no 'label' column; a generic manifest is path,label[,split]: rename")
    one_line_error(zorro("--manifest", m, "--media-root", root, "--out", out, "--shard", "3/2"), "0 <= I < N")
    one_line_error(zorro("--manifest", m, "--media-root", root, "--out", out, "--recipe", "nope"), "not found")
    one_line_error(zorro("--manifest", m, "--media-root", root, "--out", out, "--recipe", "tiny", "fps=fast"),
                   "override 'preprocess.fps=fast': preprocess.fps: expected float, got 'fast'")
    one_line_error(zorro("--manifest", m, "--media-root", root, "--out", out, "sampel_rate=1"),
                   "did you mean 'sample_rate'?")
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\n")
    one_line_error(zorro("--manifest", bad, "--media-root", root, "--out", out), "lacks column(s) path")
    assert not out.exists()


def test_nothing_cached_exits_1(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("path,label\nmissing.mp4,a\n")
    (tmp_path / "bad.mp4").write_text("not a video")
    r = zorro("--manifest", m, "--media-root", tmp_path, "--out", tmp_path / "c", "--recipe", "tiny", "--workers", "0")
    assert r.exit_code == 1 and "cached 0 of 1 clips" in r.stderr
    assert (tmp_path / "c" / "failures.csv").read_text().splitlines()[1].startswith("missing.mp4,media not found")


def test_other_settings_refused_then_rebuilt(tmp_path, synth_dir):
    m = tmp_path / "m.csv"
    m.write_text("path,label\nclass0/class0_000.mp4,a\nclass1/class1_000.avi,b\n")
    base = ["--manifest", m, "--media-root", synth_dir, "--out", tmp_path / "c", "--recipe", "tiny", "--workers", "0"]
    assert zorro(*base).exit_code == 0
    assert zorro(*base).exit_code == 0  # same settings: finished shards are skipped
    one_line_error(zorro(*base, "fps=2"), "other settings (fps 4.0 -> 2.0); pass --rebuild")
    r = zorro(*base, "fps=2", "--rebuild")
    assert r.exit_code == 0 and "cached 2 of 2 clips" in r.stderr


def test_console_script_has_no_traceback_for_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zorro_cli.cli", "preprocess", "--manifest", str(tmp_path / "x.csv"),
                           "--media-root", str(tmp_path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: --manifest: no such file {tmp_path / 'x.csv'}"


def test_help_lists_the_flags():
    out = CliRunner().invoke(app, ["preprocess", "--help"]).output
    for name in ("--manifest", "--format", "--media-root", "--out", "--workers", "--shard-size", "--shard",
                 "--recipe", "--merge", "--rebuild"):
        assert name in out


def test_python_dash_m_runs_the_same_application():
    """``python -m zorro_cli`` is ``zorro`` (for machines where the console script is not on PATH)."""
    proc = subprocess.run([sys.executable, "-m", "zorro_cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for verb in ("preprocess", "pretrain", "finetune", "evaluate", "export", "demo"):
        assert verb in proc.stdout


def test_the_main_process_does_not_import_torch(tmp_path, synth_dir):
    """Only the decode workers need torch (log-mel): importing it in the main process cost every run
    ~1.2 s at start-up and more at exit (benchmarks/README.md, "Preprocessing as a user runs it")."""
    code = ("import runpy, sys\n"
            "try:\n    runpy.run_module('zorro_cli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print(sorted(m for m in ('torch', 'torchaudio') if m in sys.modules))\n")
    args = ["preprocess", "--manifest", str(synth_dir / "manifest.csv"), "--media-root", str(synth_dir),
            "--out", str(tmp_path / "c"), "--recipe", "tiny", "--workers", "1"]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]" and (tmp_path / "c" / "index.csv").is_file()

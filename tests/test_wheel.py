"""The wheel is complete: built and installed into a fresh venv, `zorro` finds its bundled recipes.

The venv sees the test environment's packages (torch, typer, ...) through a ``.pth`` line, so nothing is
downloaded; the project itself comes only from the wheel (no PYTHONPATH, run outside the checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_for_the_wheel() -> None:
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "zorro_cli").rglob("__init__.py")}
    assert listed == found | {"zorro_cli.recipes.bundled"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_installed_wheel_ships_the_recipes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("zorro_cli", "recipes"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}

    def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=240)
        assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-2000:])
        return proc

    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", tmp_path / "dist", src)
    wheel = next((tmp_path / "dist").glob("zorro_cli-*.whl"))
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    purelib = run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(purelib, "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    where = run(py, "-c", "import zorro_cli; print(zorro_cli.__file__)").stdout.strip()
    assert where.startswith(str(venv)), where
    zorro = venv / "bin" / "zorro"
    listing = run(zorro, "recipes").stdout
    assert "bundled: none" not in listing and all(n in listing for n in ("tiny", "audioset", "esc50_audio"))
    config = run(zorro, "pretrain", "--recipe", "tiny", "--print-config", "train.lr=0.002").stdout
    resolved = yaml.safe_load(config)
    assert resolved["train"]["lr"] == 0.002 and resolved["model"]["preset"] == "zorro_vit_tiny"
    assert "preset" in run(zorro, "recipes", "tiny").stdout

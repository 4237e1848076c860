"""Shared fixtures: the team's real media (../shared/data, skipped when absent) and a tiny synthetic cache."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real_videos/, bad_videos/); the test is skipped when it is not there."""
    if not (SHARED_DATA / "real_videos").is_dir():
        pytest.skip(f"real media not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic dataset (4 classes x 6 clips, MP4/MKV/AVI/WebM, one clip without audio)."""
    from zorro_cli.data.synth import make_synthetic_dataset

    out = tmp_path_factory.mktemp("synth")
    make_synthetic_dataset(out, num_classes=4, clips_per_class=6, seconds=2.0, fps=8, size=(48, 64))
    return out


@pytest.fixture(scope="session")
def tiny_cache(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``synth_dir`` preprocessed with the tiny recipe (shard size 4, in-process)."""
    from zorro_cli.data.build import Job, preprocess
    from zorro_cli.recipes import load_recipe

    out = tmp_path_factory.mktemp("cache") / "tiny"
    cfg = load_recipe("tiny", ["preprocess.shard_size=4"]).preprocess
    preprocess(cfg, Job((synth_dir / "manifest.csv",), "generic", synth_dir, out, workers=0, plain=True))
    return out

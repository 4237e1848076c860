"""Recipes: YAML + overrides -> typed frozen dataclasses, one-line errors with dotted paths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from zorro_cli.data.config import PreprocessConfig
from zorro_cli.recipes import (
    RECIPE_DIR,
    Recipe,
    RecipeError,
    dump_recipe,
    from_dict,
    load_recipe,
    parse_overrides,
    recipe_to_dict,
)


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    steps: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Toy:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    limit: int | None = None


def test_bundled_recipes_load_and_mark_every_value():
    tiny, paper = load_recipe("tiny"), load_recipe("audioset.yaml")
    assert tiny.preprocess.n_mels == 32 and tiny.preprocess.short_side == 40
    assert paper.preprocess == PreprocessConfig(max_seconds=None)  # the defaults are the paper-scale values
    assert (paper.preprocess.sample_rate, paper.preprocess.n_mels, paper.preprocess.hop_length) == (16000, 128, 160)
    for path in RECIPE_DIR.glob("*.yaml"):
        keys = [ln for ln in path.read_text().splitlines() if re.match(r"^  \w+:", ln)]
        assert keys and all("[paper]" in ln or "[choice]" in ln for ln in keys), path


def test_path_and_defaults(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("preprocess:\n  fps: 2\n")
    assert load_recipe(p).preprocess.fps == 2.0
    assert load_recipe(None) == Recipe()
    with pytest.raises(RecipeError, match="not found"):
        load_recipe("nope")


def test_overrides_coerce_through_field_types():
    assert parse_overrides(["a.b=1e-3", "a.c=[1, 2]", "a.d=", "a.e=true"]) == [
        ("a.b", "1e-3"), ("a.c", [1, 2]), ("a.d", None), ("a.e", True)]
    toy = from_dict(Toy, {"inner": {"lr": "1e-3", "betas": [0, 1], "steps": [1.0, 2]}, "limit": None})
    assert toy.inner == Inner(lr=0.001, betas=(0.0, 1.0), steps=[1, 2])
    r = load_recipe("tiny", ["preprocess.fps=1e1", "preprocess.modalities=[audio]", "preprocess.max_seconds=null"])
    assert (r.preprocess.fps, r.preprocess.modalities, r.preprocess.max_seconds) == (10.0, ("audio",), None)


def test_all_errors_one_line_with_sources_and_dotted_paths():
    with pytest.raises(RecipeError) as err:
        load_recipe("tiny", ["preprocess.sample_rate=fast", "preprocess.sampel_rate=3", "trian.lr=1"])
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.split("; ") == [
        "override 'preprocess.sample_rate=fast': preprocess.sample_rate: expected int, got 'fast'",
        "override 'preprocess.sampel_rate=3': preprocess.sampel_rate: unknown key (did you mean 'sample_rate'?)",
        "override 'trian.lr=1': trian: unknown key (did you mean 'train'?)",
    ]


def test_file_errors_name_the_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("preprocess:\n  sample_rate: fast\n  clip_window: sometimes\n  fps: -1\n")
    with pytest.raises(RecipeError) as err:
        load_recipe(p)
    assert str(err.value) == (f"{p}: preprocess.sample_rate: expected int, got 'fast'; "
                              f"{p}: preprocess.clip_window: expected one of 'auto', 'manifest', 'whole', got 'sometimes'")
    p.write_text("preprocess:\n  fps: -1\n")
    with pytest.raises(RecipeError, match=r"preprocess.fps: expected > 0, got -1.0"):
        load_recipe(p)


def test_generic_type_errors():
    with pytest.raises(RecipeError) as err:
        from_dict(Toy, {"flag": "yes", "mode": "c", "inner": {"betas": [1]}, "limit": 1.5, "nmae": 1}, source="t")
    assert str(err.value).split("; ") == [
        "t: flag: expected bool, got 'yes'", "t: mode: expected one of 'a', 'b', got 'c'",
        "t: inner.betas: expected 2 items, got 1", "t: limit: expected int, got 1.5 (float)",
        "t: nmae: unknown key (did you mean 'name'?)"]


def test_bad_override_syntax():
    with pytest.raises(RecipeError, match=r"override 'nokey': expected section.key=value"):
        parse_overrides(["nokey"])


def test_dump_round_trip(tmp_path):
    r = load_recipe("tiny", ["preprocess.media_patterns=['{ytid}']"])
    text = dump_recipe(r)
    (tmp_path / "d.yaml").write_text(text)
    assert load_recipe(tmp_path / "d.yaml") == r
    assert recipe_to_dict(r)["preprocess"]["media_patterns"] == ["{ytid}"]
    assert isinstance(recipe_to_dict(Toy(name=Path("a")))["name"], str)  # type: ignore[arg-type]


def test_provenance_tags_are_paper_or_choice_only():
    """A recipe comment says where a value comes from with exactly two tags: ``[paper]`` (the Zorro paper
    or its summary says so) and ``[choice]`` (ours); any other bracketed tag would claim something else."""
    for path in RECIPE_DIR.glob("*.yaml"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            comment = line.partition("#")[2]
            tags = re.findall(r"\[([^\]]*)\]", comment)
            bad = [t for t in tags if re.match(r"[A-Za-z]", t) and t not in ("paper", "choice")]  # not [,split]
            assert not bad, f"{path.name}:{n}: tag(s) {bad} in {line.strip()!r}"

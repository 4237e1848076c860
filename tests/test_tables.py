"""`zorro recipes`, `zorro recipes NAME` and `zorro models` at 80 columns: every name a user must type is
printed whole on one line; each recipe key shows its value, type and the recipe file's own comment."""

from __future__ import annotations

import io
import typing
from pathlib import Path

import pytest
from rich.console import Console

from zorro_cli.model.info import preset_table
from zorro_cli.model.presets import PRESETS
from zorro_cli.recipes import Recipe, bundled_recipes
from zorro_cli.recipes.comments import key_comments, split_comment
from zorro_cli.recipes.info import rows, show_recipe, show_recipes, type_label


def render(fn, *args) -> list[str]:
    buf = io.StringIO()
    fn(*args, console=Console(file=buf, width=80, color_system=None))
    return buf.getvalue().splitlines()


def whole_on_a_line(lines: list[str], name: str) -> bool:
    return any(f" {name} " in f" {line} " for line in lines)


def test_recipe_list_fits_80_columns_and_keeps_every_name_whole() -> None:
    lines = render(show_recipes)
    assert max(len(line.rstrip()) for line in lines) <= 80
    for name in bundled_recipes():
        assert whole_on_a_line(lines, name), name
    assert whole_on_a_line(lines, "zorro_vit_b16")


@pytest.mark.parametrize("name", ["tiny", "audioset"])
def test_recipe_keys_fit_80_columns_with_values_types_and_comments(name: str) -> None:
    lines = render(show_recipe, name)
    assert max(len(line.rstrip()) for line in lines) <= 80
    keys = [k for k, *_ in rows(Recipe(), Recipe())]
    assert "data.augment.freq_mask_width" in keys
    for key in keys:
        assert whole_on_a_line(lines, key), key
    text = " ".join(" ".join(line.split()) for line in lines)
    if name == "tiny":  # the YAML's own comment on model.preset, and a changed value with its default
        assert "# [choice] 64 wide, 2 layers, 4 heads" in text
        row = next(i for i, line in enumerate(lines) if line.split()[:1] == ["model.preset"])
        assert "zorro_vit_tiny" in lines[row] and "default" in " ".join(lines[row:row + 2])


def test_model_presets_fit_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    import zorro_cli.model.info as info

    small = {k: v for k, v in PRESETS.items() if k.endswith(("tiny", "mini"))}  # (the big ones take seconds to build)
    monkeypatch.setattr(info, "PRESETS", small)
    lines = render(preset_table)
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert len(small) >= 4
    for name in small:
        assert whole_on_a_line(lines, name), name


def test_comment_parser_on_a_literal_recipe() -> None:
    text = """# Title line: no key
preprocess:
  sample_rate: 16000    # [choice] 16 kHz
  modalities: [audio, video]  # [paper] both
  label: "a # not a comment"  # [choice] quoted hash
model:
  preset: zorro_vit_tiny
  extra:
    window: 4   # [choice] nested
  # a comment on its own line
train:
  lr: 0.0005 # [choice] peak
"""
    assert key_comments(text) == {
        "preprocess.sample_rate": "[choice] 16 kHz",
        "preprocess.modalities": "[paper] both",
        "preprocess.label": "[choice] quoted hash",
        "model.extra.window": "[choice] nested",
        "train.lr": "[choice] peak",
    }
    assert split_comment(" url#frag  # c") == ("url#frag", "c")


def test_every_commented_key_of_the_bundled_recipes_is_a_recipe_key() -> None:
    from zorro_cli.recipes import RECIPE_DIR

    keys = {k for k, *_ in rows(Recipe(), Recipe())}
    for name in bundled_recipes():
        commented = set(key_comments((RECIPE_DIR / f"{name}.yaml").read_text()))
        assert commented <= keys | {k.rsplit(".", 1)[0] for k in keys}, (name, commented - keys)


def test_type_labels() -> None:
    assert type_label(typing.Literal["a", "b"]) == "a|b"
    assert type_label(int | None) == "int|null"
    assert type_label(tuple[typing.Literal["audio", "video"], ...]) == "list[audio|video]"
    assert type_label(tuple[int, int]) == "[int, int]"
    assert type_label(dict[str, float]) == "dict[str, float]"
    assert type_label(Path) == "Path"


def test_listings_as_json_for_scripts() -> None:
    import json

    from typer.testing import CliRunner

    from zorro_cli.cli import app

    res = CliRunner().invoke(app, ["recipes", "--json", "-"])
    assert res.exit_code == 0 and res.stdout.count("\n") == 1, res.output
    assert [r["name"] for r in json.loads(res.stdout)["recipes"]] == bundled_recipes()
    assert "acav100m_pretrain" in res.stderr  # the table moved to stderr
    res = CliRunner().invoke(app, ["recipes", "tiny", "--json", "-"])
    keys = {r["key"]: r for r in json.loads(res.stdout)["keys"]}
    assert keys["model.preset"] == {"key": "model.preset", "value": "zorro_vit_tiny", "default": "zorro_vit_b16",
                                    "type": "str", "comment": "[choice] 64 wide, 2 layers, 4 heads: seconds per "
                                                              "epoch on a CPU"}

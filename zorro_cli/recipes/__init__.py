"""Recipes: the typed schema (``sections``), YAML loading with ``section.key=value`` overrides and
validation (``loading``), and the listing shown by ``zorro recipes`` (``info``).

The bundled YAML files live in the top-level ``recipes/`` folder of the repository and ship in the wheel
as ``zorro_cli/recipes/bundled/`` (see ``[tool.setuptools]`` in pyproject.toml).
"""

from .loading import (
    RECIPE_DIR,
    Recipe,
    RecipeError,
    bundled_recipes,
    dump_recipe,
    from_dict,
    load_recipe,
    parse_overrides,
    recipe_from_dict,
    recipe_to_dict,
    resolve_recipe_path,
)
from .sections import DataSection, EvalSection, LogSection, ModelSection, TrainSection

__all__ = [
    "RECIPE_DIR",
    "DataSection",
    "EvalSection",
    "LogSection",
    "ModelSection",
    "Recipe",
    "RecipeError",
    "TrainSection",
    "bundled_recipes",
    "dump_recipe",
    "from_dict",
    "load_recipe",
    "parse_overrides",
    "recipe_from_dict",
    "recipe_to_dict",
    "resolve_recipe_path",
]

"""Typed recipes: nested frozen dataclasses read from YAML, ``section.key=value`` overrides, one-line errors.

A recipe is validated once, before any heavy work: every problem is collected with its dotted path and
its source (the YAML file or the override that set it) and raised together as one ``RecipeError``::

    recipes/x.yaml: preprocess.sample_rate: expected int, got 'fast'
    override 'preprocess.fps=fast': preprocess.fps: expected float, got 'fast'

The machinery is generic over dataclasses: a new section is a new field of ``Recipe`` whose type is a
frozen dataclass with defaults (and, optionally, a ``problems() -> list[str]`` method returning
``key: message`` strings for cross-field checks).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

import zorro_cli

from ..data.config import PreprocessConfig
from ..errors import UsageError
from .sections import MODEL_CHECKS, DataSection, EvalSection, LogSection, ModelSection, TrainSection

__all__ = [
    "Recipe",
    "RecipeError",
    "bundled_recipes",
    "dump_recipe",
    "from_dict",
    "load_recipe",
    "parse_overrides",
    "recipe_from_dict",
    "recipe_to_dict",
]

T = TypeVar("T")


def _recipe_dir() -> Path:
    """The bundled YAML files: inside the package when installed from a wheel (``zorro_cli/recipes/
    bundled``, mapped from the top-level ``recipes/`` by pyproject.toml), else the checkout's ``recipes/``."""
    installed = Path(__file__).resolve().parent / "bundled"
    if installed.is_dir():
        return installed
    return Path(zorro_cli.__file__).resolve().parents[1] / "recipes"


RECIPE_DIR = _recipe_dir()


class RecipeError(UsageError):
    """A recipe that cannot be used; ``str()`` is one line (several problems joined by '; ')."""


@dataclass(frozen=True)
class Recipe:
    """Everything a run needs, one section per stage."""

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    log: LogSection = field(default_factory=LogSection)

    def problems(self) -> list[str]:
        """Cross-section checks: the model this recipe builds from its ``model`` and ``data`` sections (at
        the ``preprocess`` section's mel bins) must exist, e.g. ``model.heads`` divides ``model.dim`` and
        ``data.audio_frames`` is a whole number of ``model.audio_patch`` frames."""
        if not MODEL_CHECKS.get():
            return []
        from ..model.config import ConfigError

        try:
            self.model.to_config(self.data, self.preprocess.n_mels, 2, contrastive=True)
        except ConfigError as exc:
            return [f"model.{p}" for p in exc.problems]
        except ValueError as exc:  # e.g. an unknown preset, reported by the model section already
            return [f"model: {exc}"]
        return []


def bundled_recipes() -> list[str]:
    """Names of the recipes shipped in ``recipes/``."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    """A file path as given, else the bundled ``recipes/NAME.yaml`` (``NAME`` or ``NAME.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    bundled = RECIPE_DIR / f"{stem}.yaml"
    if path.parent == Path(".") and bundled.is_file():
        return bundled
    raise RecipeError(f"recipe {str(name_or_path)!r} not found: no such file and no bundled recipe of that "
                      f"name (bundled: {', '.join(bundled_recipes()) or 'none'})")


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``["section.key=value", ...]`` -> ``[("section.key", value), ...]``; values read as YAML scalars."""
    out, errors = [], []
    for raw in overrides:
        key, sep, text = raw.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            errors.append(f"override {raw!r}: expected section.key=value")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            errors.append(f"override {raw!r}: cannot read the value as YAML ({_first_line(exc)})")
            continue
        out.append((key, value))
    if errors:
        raise RecipeError("; ".join(errors))
    return out


def load_recipe(name_or_path: str | Path | None, overrides: list[str] | None = None, *,
                model_checks: bool = True) -> Recipe:
    """Read a recipe file (or bundled name; None: the built-in defaults), apply ``section.key=value``
    overrides, validate everything; with ``model_checks=False`` everything but the checks that need the
    model library (preset names, the model's shapes: they import torch), for a verb that reads no model."""
    token = MODEL_CHECKS.set(model_checks)
    try:
        return _load(name_or_path, overrides)
    finally:
        MODEL_CHECKS.reset(token)


def _load(name_or_path: str | Path | None, overrides: list[str] | None) -> Recipe:
    data, source = None, "defaults"
    if name_or_path is not None:
        path = resolve_recipe_path(name_or_path)
        source = _display(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RecipeError(f"{source}: cannot read YAML ({_first_line(exc)})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    origins: dict[str, str] = {}
    for raw in overrides or []:
        for key, value in parse_overrides([raw]):
            _set_dotted(data, key, value)
            origins[key] = f"override {raw!r}"
    return recipe_from_dict(data, source=source, origins=origins)


def from_dict(cls: type[T], data: dict[str, Any], source: str = "recipe",
              origins: dict[str, str] | None = None) -> T:
    """Build and validate any (nested) dataclass ``cls`` from plain data, coercing through its field
    types; every problem is reported, prefixed by ``source`` (or the override that set the value)."""
    errors: list[tuple[str, str]] = []
    obj = _build(cls, data, "", errors)
    if errors:
        origins = origins or {}
        raise RecipeError("; ".join(f"{_origin(path, origins, source)}: {path}: {msg}" for path, msg in errors))
    return obj


def recipe_from_dict(data: dict[str, Any], source: str = "recipe",
                     origins: dict[str, str] | None = None) -> Recipe:
    """Build and validate a ``Recipe`` from plain data (see ``from_dict``)."""
    return from_dict(Recipe, data, source, origins)


def recipe_to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-ready data (tuples -> lists, paths -> strings) of a recipe or any section."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: recipe_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [recipe_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): recipe_to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as block-style YAML (lists too, one style throughout); ``load_recipe`` of this
    text gives the same ``Recipe`` back."""
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False, default_flow_style=False)


# --- internals -------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _display(path: Path) -> str:
    if path.resolve().parent == RECIPE_DIR:
        return f"recipes/{path.name}"
    try:
        return str(path.resolve().relative_to(RECIPE_DIR.parent))
    except ValueError:
        return str(path)


def _origin(path: str, origins: dict[str, str], source: str) -> str:
    """The override that set ``path`` (or a parent or child of it), else the file."""
    key = re.sub(r"\[\d+\]", "", path)
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        hit = origins.get(".".join(parts[:n]))
        if hit:
            return hit
    children = [origin for k, origin in origins.items() if k.startswith(key + ".")]
    return children[0] if children else source


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def _build(cls: type, data: Any, path: str, errors: list[tuple[str, str]]) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, appending ``(dotted path, message)`` problems."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.append((path or "<root>", f"expected a mapping, got {_show(data)}"))
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs, n_errors = {}, len(errors)
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (valid: {', '.join(fields)})"
            errors.append((sub, f"unknown key{hint}"))
            continue
        kwargs[key] = _coerce(value, hints[key], sub, errors)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errors.append((f"{path}.{name}" if path else name, "missing required key"))
    if len(errors) > n_errors:
        return None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        errors.append((path or "<root>", _first_line(exc)))
        return None
    problems = getattr(obj, "problems", None)
    for problem in problems() if callable(problems) else []:
        key, _, msg = problem.partition(": ")
        errors.append((f"{path}.{key}" if path else key, msg))
    return obj


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _coerce(value: Any, tp: Any, path: str, errors: list[tuple[str, str]]) -> Any:
    """``value`` converted to type ``tp`` (YAML 1.1 strings like '1e-3' become floats), or an error."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], path, errors)
        for option in inner:
            trial: list[tuple[str, str]] = []
            out = _coerce(value, option, path, trial)
            if not trial:
                return out
        errors.append((path, f"expected {' or '.join(_type_name(a) for a in args)}, got {_show(value)}"))
        return None
    if origin is Literal:
        if value in args and not isinstance(value, bool):
            return value
        errors.append((path, f"expected one of {', '.join(repr(a) for a in args)}, got {_show(value)}"))
        return None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, path, errors)
    if origin in (tuple, list):
        return _coerce_sequence(value, tp, path, errors)
    if origin is dict:
        if not isinstance(value, dict):
            errors.append((path, f"expected a mapping, got {_show(value)}"))
            return None
        return {_coerce(k, args[0], path, errors): _coerce(v, args[1], f"{path}.{k}", errors)
                for k, v in value.items()}
    return _coerce_scalar(value, tp, path, errors)


def _coerce_sequence(value: Any, tp: Any, path: str, errors: list[tuple[str, str]]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        errors.append((path, f"expected a list, got {_show(value)}"))
        return None
    if origin is list or (len(args) == 2 and args[1] is Ellipsis):
        items = [_coerce(v, args[0] if args else Any, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    elif len(value) != len(args):
        errors.append((path, f"expected {len(args)} items, got {len(value)}"))
        return None
    else:
        items = [_coerce(v, a, f"{path}[{i}]", errors) for i, (v, a) in enumerate(zip(value, args, strict=True))]
    return items if origin is list else tuple(items)


def _coerce_scalar(value: Any, tp: Any, path: str, errors: list[tuple[str, str]]) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        number = _float_or_none(value)
        if number is not None and math.isfinite(number):
            return number
        if number is not None:  # NaN or infinity: no setting means either (and NaN passes `x <= 0` checks)
            errors.append((path, f"expected a finite number, got {value}"))
            return None
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    errors.append((path, f"expected {_type_name(tp)}, got {_show(value)}"))
    return None


def _float_or_none(value: Any) -> float | None:
    """``value`` as a float when it is a number or a string that reads as one (YAML 1.1 reads '1e-3' as
    a string), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))

"""The package's shape: verbs on top, libraries below that never import them, no import circles, and a
dataset that reads the cache without PyAV."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "zorro_cli"
LIBRARIES = ("model", "data", "train", "evaluation", "recipes")


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """``{module: zorro_cli modules it imports}`` (top-level and inside functions, relative resolved;
    not those under ``if TYPE_CHECKING:``)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and ast.unparse(block.test).endswith("TYPE_CHECKING") for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:  # imports for annotations only: never run
                continue
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_libraries_never_import_verbs_or_the_cli() -> None:
    bad = [(m, t) for m, ts in _imports().items() for t in ts
           if m.split(".")[1:2] and m.split(".")[1] in LIBRARIES
           and (t.startswith("zorro_cli.commands") or t == "zorro_cli.cli")]
    assert not bad


def test_no_import_circles_between_modules() -> None:
    graph = _imports()
    # a package's __init__ gathering its own modules is not a circle
    edges = {m: {t for t in ts if not (t.endswith("__init__") or m.startswith(t + "."))} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert not cycles


def test_the_dataset_reads_the_cache_without_pyav() -> None:
    code = "import sys, zorro_cli.data.dataset, zorro_cli.data.inputs; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_every_verb_is_one_keyword_only_run_function() -> None:
    import importlib
    import inspect

    names = sorted(p.stem for p in (PKG / "commands").glob("*.py") if p.stem != "__init__")
    assert {"preprocess", "pretrain", "finetune", "evaluate", "export", "demo", "recipes", "models"} <= set(names)
    for name in names:
        run = importlib.import_module(f"zorro_cli.commands.{name}").run
        kinds = {p.kind for p in inspect.signature(run).parameters.values()}
        assert kinds <= {inspect.Parameter.KEYWORD_ONLY}, name

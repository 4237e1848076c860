"""The ``zorro`` command line: parse flags, load the recipe, call ``commands.<verb>.run(**kwargs)``, map
its result and errors (``zorro_cli.errors``) to stdout, stderr and the exit code. Nothing else lives here.

Exit codes: 0 done, 1 failed, 2 usage error (bad flag, bad recipe, bad input named on the command line).
Progress and logs go to stderr; results meant for scripts go to stdout (one JSON line) or ``--json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from . import __version__

if TYPE_CHECKING:
    from .recipes import Recipe

app = typer.Typer(
    name="zorro",
    help="Train, evaluate and export Zorro masked multimodal (audio-visual) transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zorro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Train, evaluate and export Zorro masked multimodal (audio-visual) transformers."""


def _guard(fn: Callable[[], object], json_out: Path | None = None, echo: bool = True) -> None:
    """Run a verb: its ``UsageError`` exits 2, its ``Failure`` exits 1, each as one line on stderr; a
    dict result goes to stdout as one JSON line (and to ``--json``) unless ``echo`` is off."""
    from .errors import Failure, UsageError

    try:
        result = fn()
    except (UsageError, FileNotFoundError) as e:
        typer.echo(f"error: {_one_line(e)}", err=True)
        raise typer.Exit(2) from None
    except Failure as e:
        typer.echo(f"error: {_one_line(e)}", err=True)
        raise typer.Exit(1) from None
    if echo and isinstance(result, dict) and _is_main_process():
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        typer.echo(json.dumps(result, default=str))


def _is_main_process() -> bool:
    """Rank 0 (or not distributed), from the launcher's environment (torchrun, accelerate launch)."""
    return int(os.environ.get("RANK", "0")) == 0


def _one_line(e: BaseException) -> str:
    text = str(e)
    if "\nOriginal Traceback" in text:  # re-raised from a DataLoader worker: the original's own message
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    text = " ".join(text.split()) or type(e).__name__
    return text if not isinstance(e, FileNotFoundError) or e.filename is None else f"{e.filename}: no such file"


def _recipe(recipe: str | None, overrides: list[str] | None) -> Recipe:
    from .recipes import load_recipe

    return load_recipe(recipe or "tiny", list(overrides or []))


def _print_config(recipe: Recipe) -> None:
    from .recipes import dump_recipe

    typer.echo(dump_recipe(recipe), nl=False)


RECIPE_OPT = typer.Option(None, "--recipe", help="Bundled recipe name (see `zorro recipes`) or a YAML path.")
OVERRIDES = typer.Argument(None, metavar="[SECTION.KEY=VALUE ...]", help="Recipe overrides, e.g. train.lr=3e-4.")
DATA_OPT = typer.Option(None, "--data", help="Cache folder made by `zorro preprocess`.")
OUT_OPT = typer.Option(None, "--out", help="Run directory to create (or resume).")
RESUME_OPT = typer.Option(None, "--resume", help="'auto' (continue the run in --out if any) or a checkpoint.")
JSON_OPT = typer.Option(None, "--json", help="Also write the result JSON to this file.")
PRINT_OPT = typer.Option(False, "--print-config", help="Print the resolved recipe and exit.")
DRY_OPT = typer.Option(False, "--dry-run", help="Build everything, run one batch, write nothing.")


@app.command()
def pretrain(overrides: list[str] = OVERRIDES, recipe: str = RECIPE_OPT, data: Path = DATA_OPT,
             out: Path = OUT_OPT, resume: str = RESUME_OPT, json_out: Path = JSON_OPT,
             print_config: bool = PRINT_OPT, dry_run: bool = DRY_OPT) -> None:
    """Contrastive audio-visual pre-training (InfoNCE between o_A and o_V, negatives from every process)."""
    def go() -> object:
        r = _recipe(recipe, overrides)
        if print_config:
            _print_config(r)
            return None
        from .commands import pretrain as verb

        return verb.run(recipe=r, data=data, out=out, resume=resume, command=tuple(sys.argv), dry_run=dry_run)

    _guard(go, json_out)


@app.command()
def finetune(overrides: list[str] = OVERRIDES, recipe: str = RECIPE_OPT, data: Path = DATA_OPT,
             out: Path = OUT_OPT,
             init: str = typer.Option(None, "--init", help="Warm start: a Zorro run/checkpoint/export or a "
                                                            "timm ViT weights file (.pt/.safetensors)."),
             resume: str = RESUME_OPT, json_out: Path = JSON_OPT, print_config: bool = PRINT_OPT,
             dry_run: bool = DRY_OPT) -> None:
    """Supervised training of the four heads (audio, video, fusion, global)."""
    def go() -> object:
        r = _recipe(recipe, overrides)
        if print_config:
            _print_config(r)
            return None
        from .commands import finetune as verb

        return verb.run(recipe=r, data=data, out=out, init=init, resume=resume, command=tuple(sys.argv),
                        dry_run=dry_run)

    _guard(go, json_out)


@app.command()
def evaluate(
    checkpoint: str = typer.Option(..., "--checkpoint", help="A run directory, checkpoint or export folder."),
    data: Path = typer.Option(..., "--data", help="Cache folder made by `zorro preprocess`."),
    split: str = typer.Option("test", "--split", help="Split of the cache to evaluate."),
    modality: str = typer.Option("all", "--modality", help="Head(s) to report: all, audio, video, fusion, global. "
                                 "audio/video use the unimodal path where the masking has one."),
    missing: str = typer.Option(None, "--missing", help="Feed only the other modality (audio or video)."),
    clips: int = typer.Option(1, "--clips", min=1, help="Temporal clips per video (K)."),
    crops: int = typer.Option(3, "--crops", help="Spatial crops per clip (1 or 3)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    json_out: Path = JSON_OPT,
    dump: Path = typer.Option(None, "--dump", help="Write targets and per-head scores to this .npz."),
    plots: Path = typer.Option(None, "--plots", help="Write PNG plots (per-class AP / confusion, curves) here."),
) -> None:
    """Per-head metrics (mAP/mAUC/d' or top-1/top-5/mean-class) with multi-clip, multi-crop averaging."""
    from .commands import evaluate as verb

    _guard(lambda: verb.run(checkpoint=checkpoint, data=data, split=split, modality=modality, missing=missing,
                            clips=clips, crops=crops, batch_size=batch_size, dump=dump, plots=plots), json_out)


@app.command()
def export(
    checkpoint: str = typer.Option(..., "--checkpoint", help="A run directory, checkpoint or export folder."),
    fmt: str = typer.Option("safetensors", "--format", help="safetensors or onnx."),
    modality: str = typer.Option("all", "--modality", help="ONNX graph: all (audio+video), audio or video."),
    out: Path = typer.Option(..., "--out", help="Folder to write."),
    json_out: Path = JSON_OPT,
) -> None:
    """Export weights + preprocessing config (safetensors) or an ONNX graph checked against PyTorch."""
    from .commands import export as verb

    _guard(lambda: verb.run(checkpoint=checkpoint, fmt=fmt, modality=modality, out=out), json_out)


@app.command()
def recipes(name: str = typer.Argument(None, help="Show this recipe's keys, types, defaults and values.")) -> None:
    """List the bundled recipes, or show one with every key."""
    from .commands import recipes as verb

    _guard(lambda: verb.run(name=name))


@app.command(context_settings={"allow_extra_args": False})
def preprocess(
    args: list[str] = typer.Argument(None, metavar="[KEY=VALUE ...]",
                                     help="Recipe overrides (sample_rate=16000 or preprocess.fps=8); "
                                          "with --merge: the part folders to merge."),
    manifest: list[Path] = typer.Option(None, "--manifest", help="Manifest file (repeatable)."),
    fmt: str = typer.Option("generic", "--format", help="generic, audioset, vggsound, kinetics or esc50."),
    media_root: Path = typer.Option(None, "--media-root", help="Folder of the downloaded media."),
    out: Path = typer.Option(None, "--out", help="Cache folder to write."),
    workers: int = typer.Option(1, "--workers", help="Decoding processes (0: in this process)."),
    shard_size: int = typer.Option(None, "--shard-size", help="Clips per HDF5 shard (recipe default)."),
    shard: str = typer.Option(None, "--shard", help="I/N: process only part I of N (job arrays)."),
    recipe: str = typer.Option(None, "--recipe", help="Recipe name or YAML path (default: built-in)."),
    labels: Path = typer.Option(None, "--labels", help="Label vocabulary (class_labels_indices.csv or one per line)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Replace a cache made with other settings."),
    merge: bool = typer.Option(False, "--merge", help="Merge --shard part folders into --out."),
) -> None:
    """Decode raw media listed in a manifest into a sharded HDF5 cache (resumable, parallel)."""
    from .commands import preprocess as verb

    if merge:
        _guard(lambda: verb.merge(parts=[Path(a) for a in args or []], out=out), echo=False)
    else:
        _guard(lambda: verb.run(manifests=manifest or [], fmt=fmt, media_root=media_root, out=out, workers=workers,
                                shard_size=shard_size, shard=shard, recipe=recipe, overrides=list(args or []),
                                labels=labels, rebuild=rebuild), echo=False)


@app.command()
def demo(out: Path = typer.Option(Path("zorro-demo"), "--out", help="Folder for everything the demo makes."),
         onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="Also export ONNX (needs the export extra)."),
         backbone: str = typer.Option("vit", "--backbone", help="vit, swin or hip (the tiny preset of each)."),
         json_out: Path = JSON_OPT) -> None:
    """Synthesise a small audio-visual dataset, then preprocess, pretrain, finetune, evaluate and export."""
    from .commands import demo as verb

    _guard(lambda: verb.run(out=out, onnx=onnx, backbone=backbone), json_out)


@app.command()
def models() -> None:
    """List the model presets with their token counts and parameter counts."""
    from .commands import models as verb

    _guard(verb.run)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

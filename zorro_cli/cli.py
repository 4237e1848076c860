"""The ``zorro`` command line: parse flags, load the recipe, call ``commands.<verb>.run(**kwargs)``, map
its result and errors (``zorro_cli.errors``) to stdout, stderr and the exit code. Nothing else lives here.

Exit codes: 0 done, 1 failed, 2 usage error (bad flag, bad recipe, bad input named on the command line).
Progress and logs go to stderr; results meant for scripts go to stdout (one JSON line, ``zorro_cli.output``)
and ``--json FILE``. Commands are defined (and listed by ``--help``) in pipeline order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from . import __version__
from .clikit import ZorroCommand, ZorroGroup

if TYPE_CHECKING:
    from .recipes import Recipe

app = typer.Typer(
    name="zorro",
    help="Train, evaluate and export Zorro masked multimodal (audio-visual) transformers.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=ZorroGroup,
)
command = partial(app.command, cls=ZorroCommand)

DEFAULT_RECIPE = "tiny"
FORMATS = Literal["generic", "audioset", "vggsound", "kinetics", "esc50"]
HEADS = Literal["all", "audio", "video", "fusion", "global"]


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


def _guard(fn: Callable[[], object], json_out: str | None = None, echo: bool = True) -> None:
    """Run a verb: its ``UsageError`` exits 2, its ``Failure`` exits 1, each as one line on stderr; a
    dict result goes to stdout as one JSON line (and to ``--json FILE``) unless ``echo`` is off."""
    from .errors import Failure, UsageError
    from .output import emit_result

    try:
        result = fn()
    except (UsageError, FileNotFoundError) as e:
        typer.echo(f"error: {_one_line(e)}", err=True)
        raise typer.Exit(2) from None
    except Failure as e:
        typer.echo(f"error: {_one_line(e)}", err=True)
        raise typer.Exit(1) from None
    if echo and isinstance(result, dict):
        emit_result(result, json_out)


def _one_line(e: BaseException) -> str:
    text = str(e)
    if "\nOriginal Traceback" in text:  # re-raised from a DataLoader worker: the original's own message
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]
    text = " ".join(text.split()) or type(e).__name__
    return text if not isinstance(e, FileNotFoundError) or e.filename is None else f"{e.filename}: no such file"


def _recipe(recipe: str | None, overrides: list[str] | None) -> Recipe:
    from .output import say
    from .recipes import load_recipe

    if recipe is None:
        say(f"using recipe {DEFAULT_RECIPE!r} (no --recipe given; see `zorro recipes`)")
    return load_recipe(recipe or DEFAULT_RECIPE, list(overrides or []))


def _print_config(recipe: Recipe) -> None:
    from .recipes import dump_recipe

    typer.echo(dump_recipe(recipe), nl=False)


RECIPE_OPT = typer.Option(None, "--recipe", help=f"Bundled recipe name (see `zorro recipes`) or a YAML path "
                                                 f"(default: {DEFAULT_RECIPE}, a 0.3 M-parameter smoke-test model).")
OVERRIDES = typer.Argument(None, metavar="[SECTION.KEY=VALUE ...]", help="Recipe overrides, e.g. train.lr=3e-4.")
DATA_OPT = typer.Option(None, "--data", help="Cache folder made by `zorro preprocess`.")
OUT_OPT = typer.Option(None, "--out", help="Run directory to create (or resume).")
RESUME_OPT = typer.Option(None, "--resume", help="'auto' (continue the run in --out if any) or a checkpoint.")
INIT_OPT = typer.Option(None, "--init", help="Warm start: a Zorro run/checkpoint/export or a timm ViT weights "
                                             "file (.pt/.safetensors).")
JSON_OPT = typer.Option(None, "--json", metavar="FILE|-",
                        help="Also write the result JSON to FILE ('-': stdout only; stdout always gets one line).")
LISTING_JSON_OPT = typer.Option(None, "--json", metavar="FILE|-",
                                help="The rows as one JSON line on stdout (the table moves to stderr), "
                                     "and in FILE unless FILE is '-'.")
PRINT_OPT = typer.Option(False, "--print-config", help="Print the resolved recipe and exit.")
DRY_OPT = typer.Option(False, "--dry-run", help="Build everything, run one batch, write nothing.")


@command(context_settings={"allow_extra_args": False})
def preprocess(
    args: list[str] = typer.Argument(None, metavar="[KEY=VALUE ...]",
                                     help="Recipe overrides (sample_rate=16000 or preprocess.fps=8); "
                                          "with --merge: the part folders to merge."),
    manifest: list[Path] = typer.Option(None, "--manifest", help="Manifest file (repeatable)."),
    fmt: FORMATS = typer.Option("generic", "--format", help="Manifest format."),
    media_root: Path = typer.Option(None, "--media-root", help="Folder of the downloaded media."),
    out: Path = typer.Option(None, "--out", help="Cache folder to write."),
    workers: int = typer.Option(1, "--workers", help="Decoding processes (0: in this process)."),
    shard_size: int = typer.Option(None, "--shard-size", help="Clips per HDF5 shard (recipe default)."),
    shard: str = typer.Option(None, "--shard", help="I/N: process only part I of N (job arrays)."),
    recipe: str = typer.Option(None, "--recipe", help="Recipe name or YAML path whose preprocess section to use "
                                                     "(default: the built-in paper-scale settings)."),
    labels: Path = typer.Option(None, "--labels", help="Label vocabulary (class_labels_indices.csv or one per line)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Replace a cache made with other settings."),
    merge: bool = typer.Option(False, "--merge", help="Merge --shard part folders into --out."),
    json_out: str = JSON_OPT,
) -> None:
    """Decode raw media listed in a manifest into a sharded HDF5 cache (resumable, parallel)."""
    from .commands import preprocess as verb

    if merge:
        _guard(lambda: verb.merge(parts=[Path(a) for a in args or []], out=out), json_out)
    else:
        _guard(lambda: verb.run(manifests=manifest or [], fmt=fmt, media_root=media_root, out=out, workers=workers,
                                shard_size=shard_size, shard=shard, recipe=recipe, overrides=list(args or []),
                                labels=labels, rebuild=rebuild), json_out)


@command()
def pretrain(overrides: list[str] = OVERRIDES, recipe: str = RECIPE_OPT, data: Path = DATA_OPT,
             out: Path = OUT_OPT, init: str = INIT_OPT, resume: str = RESUME_OPT, json_out: str = JSON_OPT,
             print_config: bool = PRINT_OPT, dry_run: bool = DRY_OPT) -> None:
    """Contrastive pre-training: audio-visual (o_A against o_V; train.contrastive av / av_fusion) or unimodal
    (two views of each clip; intra), negatives from every process."""
    def go() -> object:
        r = _recipe(recipe, overrides)
        if print_config:
            _print_config(r)
            return None
        from .commands import pretrain as verb

        return verb.run(recipe=r, data=data, out=out, init=init, resume=resume, command=tuple(sys.argv),
                        dry_run=dry_run)

    _guard(go, json_out)


@command()
def finetune(overrides: list[str] = OVERRIDES, recipe: str = RECIPE_OPT, data: Path = DATA_OPT,
             out: Path = OUT_OPT, init: str = INIT_OPT, resume: str = RESUME_OPT, json_out: str = JSON_OPT, print_config: bool = PRINT_OPT,
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


@command()
def evaluate(
    checkpoint: str = typer.Option(..., "--checkpoint", help="A run directory, checkpoint or export folder."),
    data: Path = typer.Option(..., "--data", help="Cache folder made by `zorro preprocess`."),
    split: str = typer.Option("test", "--split", help="Split of the cache to evaluate."),
    modality: HEADS = typer.Option("all", "--modality", help="Head(s) to report; audio/video use the unimodal "
                                                             "path where the masking has one."),
    missing: Literal["audio", "video"] | None = typer.Option(None, "--missing",
                                                             help="Feed only the other modality."),
    clips: int = typer.Option(1, "--clips", min=1, help="Temporal clips per video (K)."),
    crops: int = typer.Option(3, "--crops", help="Spatial crops per clip (1 or 3)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Clips per batch (default: the run's "
                                   "eval.batch_size, else 16)."),
    workers: int = typer.Option(None, "--workers", min=0, help="DataLoader processes (default: the run's "
                                "data.workers, else 2; 0: in this process)."),
    precision: Literal["auto", "fp32", "bf16", "fp16"] = typer.Option(
        "auto", "--precision", help="auto: as the run trained."),
    json_out: str = JSON_OPT,
    dump: Path = typer.Option(None, "--dump", help="Write targets and per-head scores to this .npz."),
    plots: Path = typer.Option(None, "--plots", help="Write PNG plots (per-class AP / confusion, curves) here."),
) -> None:
    """Per-head metrics (mAP/mAUC/d' or top-1/top-5/mean-class) with multi-clip, multi-crop averaging."""
    from .commands import evaluate as verb

    _guard(lambda: verb.run(checkpoint=checkpoint, data=data, split=split, modality=modality, missing=missing,
                            clips=clips, crops=crops, batch_size=batch_size, dump=dump, plots=plots,
                            workers=workers, precision=precision), json_out)


@command()
def predict(
    files: list[str] = typer.Argument(..., metavar="FILE...", help="Media files, folders, glob patterns "
                                      "(quoted) or CSV manifests with a path column."),
    checkpoint: str = typer.Option(..., "--checkpoint", help="A run directory, checkpoint or export folder "
                                   "(safetensors or ONNX)."),
    modality: str = typer.Option("all", "--modality", help="Inputs to feed: all, audio or video (one: the "
                                 "unimodal path; the other stream is not read)."),
    k: int = typer.Option(5, "--top-k", help="Labels per head."),
    clips: int = typer.Option(1, "--clips", help="Temporal clips per file (K), as evaluate."),
    crops: int = typer.Option(3, "--crops", help="Spatial crops per clip (1 or 3), as evaluate."),
    batch_size: int = typer.Option(16, "--batch-size", help="Files per batch."),
    workers: int = typer.Option(0, "--workers", help="Decoding processes (0: in this process)."),
    runtime: str = typer.Option("auto", "--runtime", help="auto, torch or onnx (auto: the weights when "
                                "the folder has them, else its ONNX graphs)."),
    precision: str = typer.Option("auto", "--precision", help="auto (as the run trained), fp32, bf16, fp16."),
    json_out: str = typer.Option(None, "--json", help="Also write the per-file JSON lines to this file "
                                 "(- : stdout only)."),
) -> None:
    """Each head's top-k labels for your own media files; one JSON line per file on stdout."""
    from .commands import predict as verb
    from .output import result_line

    def go() -> object:
        out = None if json_out in (None, "-") else Path(json_out)
        try:
            result = verb.run(files=files, checkpoint=checkpoint, modality=modality, top_k=k, clips=clips,
                              crops=crops, batch_size=batch_size, workers=workers, runtime=runtime,
                              precision=precision, json_out=out, emit=lambda r: typer.echo(result_line(r)))
        except verb.PredictFailed as e:
            _predictions_table(e.result["records"])
            raise
        _predictions_table(result["records"])
        return result

    _guard(go, echo=False)


def _predictions_table(records: list[dict[str, object]]) -> None:
    from .evaluation.report import print_predictions

    print_predictions(records)  # type: ignore[arg-type]


@command()
def export(
    checkpoint: str = typer.Option(..., "--checkpoint", help="A run directory, checkpoint or export folder."),
    fmt: Literal["safetensors", "onnx"] = typer.Option("safetensors", "--format", help="What to write."),
    modality: Literal["all", "audio", "video"] = typer.Option("all", "--modality",
                                                              help="ONNX graph: all (audio+video), audio or video."),
    out: Path = typer.Option(..., "--out", help="Folder to write."),
    json_out: str = JSON_OPT,
) -> None:
    """Export weights + preprocessing config (safetensors) or an ONNX graph checked against PyTorch."""
    from .commands import export as verb

    _guard(lambda: verb.run(checkpoint=checkpoint, fmt=fmt, modality=modality, out=out), json_out)


@command()
def demo(out: Path = typer.Option(Path("zorro-demo"), "--out", help="Folder for everything the demo makes."),
         onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="Also export ONNX (needs the export extra)."),
         backbone: Literal["vit", "swin", "hip"] = typer.Option("vit", "--backbone", help="The tiny preset of this backbone."),
         json_out: str = JSON_OPT) -> None:
    """Synthesise a small audio-visual dataset, then preprocess, pretrain, finetune, evaluate and export."""
    from .commands import demo as verb

    _guard(lambda: verb.run(out=out, onnx=onnx, backbone=backbone), json_out)


@command()
def recipes(name: str = typer.Argument(None, help="Show this recipe's keys: value, type, default, comment."),
            json_out: str = LISTING_JSON_OPT) -> None:
    """List the bundled recipes, or show one with every key (a table; the rows as JSON with --json)."""
    from .commands import recipes as verb

    listing = json_out is not None
    _guard(lambda: verb.run(name=name, table_to_stderr=listing), json_out, echo=listing)


@command()
def models(json_out: str = LISTING_JSON_OPT) -> None:
    """List the model presets with their token counts and parameter counts (as JSON with --json)."""
    from .commands import models as verb

    listing = json_out is not None
    _guard(lambda: verb.run(table_to_stderr=listing), json_out, echo=listing)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

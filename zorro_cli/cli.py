"""The ``zorro`` command line: parse, load the recipe, call ``<stage>.run``. Nothing else lives here.

Exit codes: 0 done, 1 failed, 2 usage error (bad flag, bad recipe, bad input named on the command line).
"""

from __future__ import annotations

from pathlib import Path

import typer

from . import __version__

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


@app.command()
def models() -> None:
    """List the model presets with their token counts and parameter counts."""
    from .model.info import preset_table

    preset_table()


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
    from . import preprocess as stage

    raise typer.Exit(stage.run(manifest or [], fmt, media_root, out, workers, shard_size, shard, recipe,
                               [] if merge else list(args or []), labels, rebuild,
                               [Path(a) for a in args or []] if merge else None))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

"""The ``zorro`` command line: parse, load the recipe, call ``<stage>.run``. Nothing else lives here.

Exit codes: 0 done, 1 failed, 2 usage error (bad flag, bad recipe, bad input named on the command line).
"""

from __future__ import annotations

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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

"""``python -m zorro_cli`` runs the ``zorro`` command (useful where the console script is not on PATH)."""

from zorro_cli.cli import main

main()

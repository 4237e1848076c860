"""The verbs: one module per ``zorro`` command, each with one entry function ``run(**kwargs)``.

A verb takes keyword arguments (its signature is its schema), returns a result (a dict for scripts, or
``None``) and raises :class:`zorro_cli.errors.UsageError` (exit 2) or :class:`zorro_cli.errors.Failure`
(exit 1). ``zorro_cli/cli.py`` only parses flags into these calls and maps the result and errors.
Library packages (``model``, ``data``, ``train``, ``evaluation``, ``recipes``) never import from here.
"""

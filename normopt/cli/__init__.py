"""The Typer command line: a thin shell over the Python API (``normopt_cli.main`` is the entry point)."""

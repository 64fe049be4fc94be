"""The `arscore` command line: the one composition root that wires features, training, serving."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from features.errors import ArscoreError

app = typer.Typer(
    help="arscore: collectibility scoring for healthcare accounts receivable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = (
    "arscore.commands_data",
    "arscore.commands_models",
    "arscore.commands_serve",
    "arscore.commands_audit",
    "arscore.commands_worklist",
    "arscore.commands_batch",
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as missing:
        if missing.name != _name:
            raise
        continue
    _module.register(app)


def main() -> None:
    """Entry point: run the CLI, turning arscore's own errors into a clear message and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except ArscoreError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

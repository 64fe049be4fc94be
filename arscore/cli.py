"""The `arscore` command line: the one composition root that wires features, training, serving."""

from __future__ import annotations

import logging
import sys

import typer

from arscore import (
    commands_audit,
    commands_batch,
    commands_data,
    commands_forecast,
    commands_import,
    commands_models,
    commands_serve,
    commands_users,
    commands_worklist,
)
from features.errors import ArscoreError

app = typer.Typer(
    help="arscore: collectibility scoring for healthcare accounts receivable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _commands in (
    commands_data,
    commands_import,
    commands_forecast,
    commands_models,
    commands_batch,
    commands_serve,
    commands_worklist,
    commands_users,
    commands_audit,
    commands_forecast,
):
    _commands.register(app)


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

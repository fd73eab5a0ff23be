"""The ``ebatch`` command line. Each command lives in its own module with a ``register(app)`` function.

Bad input (an unknown name, an invalid value, a malformed file) is reported as one line on stderr with
exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from ebatch.cli import bench, compare, info, reproduce, tune

__all__ = ["app", "main"]

app = typer.Typer(
    name="ebatch",
    help="E-BATCH: simulate, compare, tune and run batching policies for RNN inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (info, compare, reproduce, tune, bench):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning ``ValueError`` into a one-line error and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)

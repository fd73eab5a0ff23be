"""The ``ebatch`` command line. Each command lives in its own module with a ``register(app)`` function.

Bad input (an unknown name, an invalid value, a malformed file) is reported as one line on stderr with
exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from ebatch.cli import bench, calibrate, compare, info, loadgen, reproduce, serve, sweep, tornado, tune

__all__ = ["app", "main"]

app = typer.Typer(
    name="ebatch",
    help="E-BATCH: simulate, compare, tune and run batching policies for RNN inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (info, compare, reproduce, tornado, tune, sweep, bench, serve, loadgen, calibrate):
    module.register(app)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; ``ValueError`` and usage errors become one line on stderr and exit code 2."""
    try:
        from typer._click.exceptions import ClickException  # typer >= 0.20 vendors click
    except ImportError:  # pragma: no cover
        from click.exceptions import ClickException
    try:
        code = app(args=argv, standalone_mode=False)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(2)
    except ClickException as exc:  # typer's own parse errors: unknown option, not an integer, ...
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()
        else:
            where = getattr(getattr(exc, "ctx", None), "command_path", "ebatch")
            typer.echo(f"error: {where}: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)

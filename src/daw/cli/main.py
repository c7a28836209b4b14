"""The ``daw`` entry point and its one top-level error handler.

Exit status: 0 pass or warn, 1 block, 2 usage or configuration error, 3 internal
error (with a log file), 130 interrupt.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

import typer

from daw import __version__
from daw.cli.check import check_command
from daw.cli.migrate_cmd import migrate_app
from daw.cli.policy_cmd import policy_app
from daw.cli.runs import replay_command, runs_app
from daw.errors import DawError
from daw.redact import redact

EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="daw",
    help="Measure a change with real tools and decide whether it may ship.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("check")(check_command)
app.command("replay")(replay_command)
app.add_typer(policy_app, name="policy")
app.add_typer(runs_app, name="runs")
app.add_typer(migrate_app, name="migrate")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"daw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details."),
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    level_name = os.environ.get("DAW_LOG_LEVEL", "").upper()
    if level_name in logging.getLevelNamesMapping():
        level = logging.getLevelNamesMapping()[level_name]
    logging.basicConfig(level=level, format="[daw] %(levelname)s %(name)s: %(message)s")


def _write_crash_log() -> Path:
    folder = Path(tempfile.gettempdir()) / "daw-logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.log"
    path.write_text(traceback.format_exc(), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status instead of raising."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="daw")
    except DawError as exc:
        typer.echo(f"daw: error: {redact(exc.message)}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"daw: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("daw: interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        log_path = _write_crash_log()
        typer.echo(
            f"daw: internal error: {type(exc).__name__}: {redact(str(exc))}", err=True
        )
        typer.echo(f"details were written to {log_path}; please report it", err=True)
        return EXIT_INTERNAL
    return result if isinstance(result, int) else 0


def run() -> None:
    sys.exit(main())

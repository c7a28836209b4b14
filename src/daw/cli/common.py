"""Options and helpers shared by several commands."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from daw import git
from daw.errors import StoreError, UsageError
from daw.run import RunRecord
from daw.store.sqlite import RunStore

STORE_ENV = "DAW_STORE"


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def resolve_store(store: Path | None, repo: Path) -> Path:
    """Return the run store path: ``--store``, then $DAW_STORE, then ``.daw/daw.db``."""
    if store is not None:
        return store.resolve()
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).resolve()
    return git.find_root(repo) / ".daw" / "daw.db"


def open_store(store: Path | None, repo: Path, *, must_exist: bool = False) -> RunStore:
    """Return the run store; with ``must_exist`` a missing store file is an error."""
    path = resolve_store(store, repo)
    if must_exist and not path.is_file():
        raise StoreError(
            f"no run store at {path}",
            hint="run `daw check` first, or pass --store with the store's path",
        )
    return RunStore(path)


def ignore_state_folder(root: Path) -> None:
    """Write ``.daw/.gitignore`` so the store, cache and fork state stay out of git.

    An existing file is left as it is. The policy file ``.daw/policy.yaml`` is not
    ignored, because projects commit it.
    """
    path = root / ".daw" / ".gitignore"
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(GITIGNORE_TEXT, encoding="utf-8")
    except OSError:
        return


GITIGNORE_TEXT = """\
# Written by DAW: the run store, result cache and migration state are local.
daw.db*
cache/
forks/
migrations/
"""


def emit(record: RunRecord, output: OutputFormat) -> None:
    """Write the record to stdout in the requested format."""
    from daw.reports.json_report import render_json
    from daw.reports.markdown import render_markdown
    from daw.reports.terminal import render_terminal

    if output is OutputFormat.JSON:
        typer.echo(render_json(record), nl=False)
    elif output is OutputFormat.MARKDOWN:
        typer.echo(render_markdown(record), nl=False)
    else:
        render_terminal(record, stdout_console())


def write_file(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write the {what} to {path}: {exc.strerror}",
            hint="choose a writable path",
        ) from exc


def exit_status(record: RunRecord) -> int:
    return 1 if record.verdict.status.value == "block" else 0


REPO_OPTION = typer.Option(
    Path("."),
    "--repo",
    metavar="PATH",
    help="Repository to check (any folder inside it).",
    show_default=True,
)
STORE_OPTION = typer.Option(
    None,
    "--store",
    metavar="FILE",
    help="SQLite run store [default: .daw/daw.db in the repository, or $DAW_STORE].",
)
FORMAT_OPTION = typer.Option(
    OutputFormat.TABLE, "--format", "-f", help="Output format on stdout."
)

"""``daw check``: measure the repository and print the verdict."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from daw.check import CheckRequest, run_check
from daw.cli.common import (
    FORMAT_OPTION,
    REPO_OPTION,
    STORE_ENV,
    STORE_OPTION,
    OutputFormat,
    emit,
    exit_status,
    ignore_state_folder,
    open_store,
    stderr_console,
    write_file,
)
from daw.errors import UsageError
from daw.models import ProbeResult
from daw.policy.model import Settings
from daw.stages import ENVIRONMENTS, Stage

CACHE_ENV = "DAW_CACHE_DIR"


class _Progress:
    """Prints one line per probe start and end on stderr, with its duration."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet

    def __call__(self, probe: str, event: str, result: ProbeResult | None) -> None:
        if self.quiet:
            return
        if event == "start":
            self.console.print(f"[dim]running {probe} ...[/dim]")
            return
        assert result is not None
        statuses = sorted({m.status.value for m in result.measurements})
        source = "cached" if result.cached else f"{result.duration_s:.1f} s"
        summary = f"{', '.join(statuses)}, {len(result.findings)} findings ({source})"
        self.console.print(f"[dim]{probe}: {summary}[/dim]")


def _absolute(paths: list[Path] | None) -> list[str]:
    return [str(path.resolve()) for path in paths or []]


def check_command(
    stage: Stage = typer.Option(
        Stage.MERGE, "--stage", "-s", help="Delivery stage to judge."
    ),
    environment: str = typer.Option(
        "development",
        "--env",
        "-e",
        metavar="ENV",
        help=f"Environment: {', '.join(ENVIRONMENTS)}.",
    ),
    base: str | None = typer.Option(
        None,
        "--base",
        metavar="REF",
        help="Base ref for new-code coverage (merge-base with HEAD).",
    ),
    all_files: bool = typer.Option(
        False,
        "--all-files",
        help="At the commit stage, check the whole tree, not the index.",
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        metavar="FILE",
        help="Policy file [default: .daw/policy.yaml].",
    ),
    output: OutputFormat = FORMAT_OPTION,
    sarif_out: Path | None = typer.Option(
        None, "--sarif-out", metavar="FILE", help="Write all findings as SARIF."
    ),
    junit_out: Path | None = typer.Option(
        None,
        "--junit-out",
        metavar="FILE",
        help="Write one JUnit test case per criterion.",
    ),
    sarif: list[Path] | None = typer.Option(
        None,
        "--sarif",
        metavar="FILE",
        help="Import SARIF 2.1 results (semgrep, CodeQL, eslint); repeatable.",
    ),
    coverage_report: list[Path] | None = typer.Option(
        None,
        "--coverage-report",
        metavar="FILE",
        help="Read coverage from this report (coverage.py JSON, Cobertura XML or LCOV) "
        "instead of running the tests; repeatable.",
    ),
    junit_report: list[Path] | None = typer.Option(
        None,
        "--junit-report",
        metavar="FILE",
        help="Count test failures from this JUnit XML; repeatable.",
    ),
    osv_db: Path | None = typer.Option(
        None,
        "--osv-db",
        metavar="PATH",
        help="Offline OSV advisories: a folder of JSON files or an OSV zip.",
    ),
    index_url: str | None = typer.Option(
        None,
        "--index-url",
        metavar="URL",
        help="PyPI JSON API base for dependency age [default: https://pypi.org/pypi].",
    ),
    test_command: str | None = typer.Option(
        None,
        "--test-command",
        metavar="COMMAND",
        help="Test command to run under coverage [default: python -m pytest].",
    ),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Run every tool, ignoring cached results."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        metavar="N",
        help="Probes run at once, at least 1 [default: CPU count].",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print nothing on stderr but errors."
    ),
    repo: Path = REPO_OPTION,
    store: Path | None = STORE_OPTION,
) -> int:
    """Measure the change, apply the policy and record the verdict."""
    import shlex

    from daw.reports.junit_out import render_junit
    from daw.reports.sarif_out import render_sarif

    if environment not in ENVIRONMENTS:
        raise UsageError(
            f"invalid --env {environment!r}",
            hint=f"use one of: {', '.join(ENVIRONMENTS)}",
        )
    try:
        command = shlex.split(test_command) if test_command is not None else None
    except ValueError as exc:
        raise UsageError(
            f"invalid --test-command: {exc}", hint="check the quoting"
        ) from exc
    if command == []:
        raise UsageError(
            "invalid --test-command: it is empty",
            hint='give a command such as --test-command "python -m pytest -q"',
        )
    _require_existing("--sarif", sarif)
    _require_existing("--coverage-report", coverage_report)
    _require_existing("--junit-report", junit_report)
    _require_existing("--osv-db", [osv_db] if osv_db else None)
    _require_existing("--policy", [policy] if policy else None, folder_ok=False)
    settings = Settings(
        test_command=command,
        coverage_reports=_absolute(coverage_report),
        junit_reports=_absolute(junit_report),
        sarif_files=_absolute(sarif),
        osv_db=str(osv_db.resolve()) if osv_db else None,
        pypi_index_url=index_url,
    )
    request = CheckRequest(
        repo=repo.resolve(),
        stage=stage,
        environment=environment,
        base=base,
        all_files=all_files,
        policy_path=policy.resolve() if policy else None,
        cli_settings=settings,
        use_cache=not no_cache,
        cache_dir=Path(os.environ[CACHE_ENV]).resolve()
        if os.environ.get(CACHE_ENV)
        else None,
        jobs=jobs,
    )
    console = stderr_console()
    record = run_check(request, progress=_Progress(console, quiet))
    if store is None and not os.environ.get(STORE_ENV):
        ignore_state_folder(Path(record.repo))
    open_store(store, request.repo).save(record)
    emit(record, output)
    if sarif_out:
        write_file(sarif_out, render_sarif(record), "SARIF report")
    if junit_out:
        write_file(junit_out, render_junit(record), "JUnit report")
    if record.dirty and stage is not Stage.COMMIT and not quiet:
        note = "note: the working tree has uncommitted changes to tracked files"
        console.print(f"[yellow]{note}[/yellow]")
    if not quiet:
        status = record.verdict.status.value
        console.print(f"run {record.run_id} stored; status {status}")
    return exit_status(record)


def _require_existing(
    option: str, paths: list[Path] | None, *, folder_ok: bool = True
) -> None:
    """Raise UsageError for a path given on the command line that does not exist."""
    for path in paths or []:
        if not path.exists():
            raise UsageError(f"{option} {path}: no such file or folder")
        if not folder_ok and path.is_dir():
            raise UsageError(f"{option} {path}: is a folder, expected a file")

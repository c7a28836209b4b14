"""``daw runs list``, ``daw runs show`` and ``daw replay``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from daw.cli.common import (
    FORMAT_OPTION,
    REPO_OPTION,
    STORE_OPTION,
    OutputFormat,
    emit,
    exit_status,
    open_store,
    stderr_console,
)
from daw.policy.evaluation import evaluate
from daw.policy.loading import load_policy
from daw.policy.model import Policy
from daw.run import RunRecord
from daw.stages import Stage

runs_app = typer.Typer(help="List and show stored runs.", no_args_is_help=True)


@runs_app.command("list")
def list_runs(
    limit: int = typer.Option(
        20, "--limit", "-n", min=1, metavar="N", help="Number of runs to list."
    ),
    repo: Path = REPO_OPTION,
    store: Path | None = STORE_OPTION,
) -> None:
    """List stored runs, newest first."""
    summaries = open_store(store, repo.resolve(), must_exist=True).list(limit=limit)
    rows = [("RUN ID", "CREATED (UTC)", "STAGE", "ENV", "STATUS", "COMMIT")]
    for summary in summaries:
        rows.append(
            (
                summary.run_id,
                summary.created_at[:19],
                summary.stage,
                summary.environment,
                summary.status,
                (summary.commit or "-")[:12],
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        typer.echo("  ".join(cells).rstrip())


@runs_app.command("show")
def show_run(
    run_id: str = typer.Argument(
        ..., help="Run id, or a unique prefix of at least 6 characters."
    ),
    output: OutputFormat = FORMAT_OPTION,
    repo: Path = REPO_OPTION,
    store: Path | None = STORE_OPTION,
) -> int:
    """Show a stored run exactly as it was reported."""
    record = open_store(store, repo.resolve(), must_exist=True).get(run_id)
    emit(record, output)
    return exit_status(record)


def replay(record: RunRecord, policy: Policy) -> RunRecord:
    """Re-evaluate the stored measurements of ``record`` under ``policy``.

    The evaluation time, stage and environment are the stored ones, so with the
    stored policy the verdict is identical to the original.
    """
    verdict = evaluate(
        policy,
        record.measurements,
        record.findings,
        stage=Stage(record.stage),
        environment=record.environment,
        at=dt.datetime.fromisoformat(record.verdict.evaluated_at),
    )
    return record.model_copy(update={"verdict": verdict, "policy": policy.canonical()})


def replay_command(
    run_id: str = typer.Argument(
        ..., help="Run id, or a unique prefix of at least 6 characters."
    ),
    policy: Path | None = typer.Option(
        None,
        "--policy",
        metavar="FILE",
        help="Evaluate under this policy file instead of the stored policy.",
    ),
    output: OutputFormat = FORMAT_OPTION,
    repo: Path = REPO_OPTION,
    store: Path | None = STORE_OPTION,
) -> int:
    """Re-evaluate a stored run, or show what another policy (--policy) decides."""
    record = open_store(store, repo.resolve(), must_exist=True).get(run_id)
    if policy is None:
        effective = Policy.model_validate(record.policy)
    else:
        effective, _ = load_policy(
            Path(record.repo), policy.resolve(), record.environment
        )
    replayed = replay(record, effective)
    emit(replayed, output)
    if policy is not None:
        _print_changes(record, replayed)
    return exit_status(replayed)


def _print_changes(original: RunRecord, replayed: RunRecord) -> None:
    console = stderr_console()
    before = {c.id: c.status.value for c in original.verdict.criteria}
    changed = [
        (c.id, before.get(c.id, "absent"), c.status.value)
        for c in replayed.verdict.criteria
        if before.get(c.id) != c.status.value
    ]
    console.print(
        f"overall: {original.verdict.status.value} -> {replayed.verdict.status.value}"
    )
    for criterion_id, old, new in changed:
        console.print(f"  {criterion_id}: {old} -> {new}")
    if not changed:
        console.print("  no criterion changed status")

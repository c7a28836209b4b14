"""``daw migrate``: the plan, run, forks, cleanup and schema commands.

Progress lines go to stderr; ``--format json`` writes the machine result to
stdout. Exit status: 0 promoted or nothing to do, 1 when the migration failed
on the fork, validation failed, the policy blocked it or promotion failed, 2 for
usage errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from daw.cli.common import OutputFormat, write_file
from daw.migrate import forks
from daw.migrate.dburl import parse_url
from daw.migrate.promote import MAX_TIMEOUT_S, Limits
from daw.migrate.validate import render_schema, schema_dump
from daw.migrate.workflow import (
    MigrateRequest,
    Plan,
    RunResult,
    blocking_reasons,
    plan,
    run,
)

migrate_app = typer.Typer(
    help="Rehearse database migrations on a fork before they reach production.",
    no_args_is_help=True,
)


def _finite(value: float | None) -> float | None:
    """Reject NaN and infinity, which click's FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


DATABASE_OPTION = typer.Option(
    ...,
    "--database",
    "-d",
    metavar="URL",
    help="Production database URL: postgresql://user@host:port/dbname, "
    "sqlite:///path/file.db or a path ending in .db, .sqlite or .sqlite3.",
)
MIGRATIONS_OPTION = typer.Option(
    ...,
    "--migrations",
    "-m",
    metavar="PATH",
    help="Folder of numbered .sql files, or an Alembic project.",
)
FORMAT_OPTION = typer.Option(
    OutputFormat.TABLE, "--format", "-f", help="Output format on stdout."
)
LARGE_TABLE_MB_OPTION = typer.Option(
    100.0,
    "--large-table-mb",
    metavar="MB",
    min=0.0,
    callback=_finite,
    help="Size in MiB from which the linter counts a table as large.",
)
POLICY_OPTION = typer.Option(None, "--policy", metavar="PATH", help="Policy file.")
STRATEGY_OPTION = typer.Option(
    None,
    "--strategy",
    metavar="NAME",
    help="Fork strategy: "
    + ", ".join(forks.STRATEGIES)
    + ". Default: the first one that can fork this kind of database now.",
)
TEST_COMMAND_OPTION = typer.Option(
    None,
    "--test-command",
    metavar="COMMAND",
    help="Command run with DATABASE_URL set to the fork; it must exit 0.",
)
EXPECTED_SCHEMA_OPTION = typer.Option(
    None,
    "--expected-schema",
    metavar="PATH",
    help="Schema file (JSON or YAML, as written by daw migrate schema) the fork "
    "must match after the migration.",
)
APPROVE_OPTION = typer.Option(
    [],
    "--approve",
    metavar="FINGERPRINT",
    help="Approve a destructive finding by its fingerprint; repeat for several.",
)
LOCK_TIMEOUT_OPTION = typer.Option(
    5.0,
    "--lock-timeout",
    metavar="SECONDS",
    min=0.0,
    max=MAX_TIMEOUT_S,
    callback=_finite,
    help="lock_timeout on production in seconds; 0 disables it.",
)
STATEMENT_TIMEOUT_OPTION = typer.Option(
    900.0,
    "--statement-timeout",
    metavar="SECONDS",
    min=0.0,
    max=MAX_TIMEOUT_S,
    callback=_finite,
    help="statement_timeout on production in seconds; 0 disables it.",
)
ALL_FORKS_OPTION = typer.Option(
    False, "--all", help="Also discard forks of runs that are still going."
)
SCHEMA_DATABASE_OPTION = typer.Option(
    ...,
    "--database",
    "-d",
    metavar="URL",
    help="Database URL (postgresql:// or sqlite:///).",
)
OUTPUT_PATH_OPTION = typer.Option(
    None,
    "--output",
    "-o",
    metavar="PATH",
    help="Write the schema to this file instead of stdout.",
)


def _echo_json(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


@migrate_app.command("plan")
def plan_command(
    database: str = DATABASE_OPTION,
    migrations: Path = MIGRATIONS_OPTION,
    strategy: str | None = STRATEGY_OPTION,
    approve: list[str] = APPROVE_OPTION,
    large_table_mb: float = LARGE_TABLE_MB_OPTION,
    policy: Path | None = POLICY_OPTION,
    output: OutputFormat = FORMAT_OPTION,
) -> int:
    """Show pending migrations, lint findings, the gate and the fork strategy."""
    request = MigrateRequest(
        database=database,
        migrations=migrations,
        strategy=strategy,
        approvals=tuple(approve),
        large_table_bytes=int(large_table_mb * 1024 * 1024),
        policy_path=policy,
    )
    result = plan(request)
    if output is OutputFormat.JSON:
        _echo_json(result.summary())
    else:
        _print_plan(result)
    return 1 if result.blocked else 0


def _print_plan(result: Plan) -> None:
    typer.echo(f"database: {result.url.redacted()}")
    typer.echo(f"pending migrations: {len(result.pending)}")
    for migration in result.pending:
        mode = "one transaction" if migration.transactional else "autocommit"
        typer.echo(
            f"  {migration.path} ({len(migration.statements)} statements, {mode})"
        )
    for finding in result.findings:
        typer.echo(
            f"  {finding.category} {finding.path}:{finding.line} {finding.rule_id}: "
            f"{finding.message} [fingerprint {finding.fingerprint}]"
        )
    typer.echo(f"strategy: {result.strategy or 'none available'}")
    for name, reason in sorted(result.rejected.items()):
        typer.echo(f"  {name} not used: {reason}")
    typer.echo("gate: " + ("blocks production" if result.blocked else "passes"))
    for step in result.steps():
        typer.echo(f"  - {step}")


@migrate_app.command("run")
def run_command(
    database: str = DATABASE_OPTION,
    migrations: Path = MIGRATIONS_OPTION,
    strategy: str | None = STRATEGY_OPTION,
    test_command: str | None = TEST_COMMAND_OPTION,
    expected_schema: Path | None = EXPECTED_SCHEMA_OPTION,
    approve: list[str] = APPROVE_OPTION,
    lock_timeout: float = LOCK_TIMEOUT_OPTION,
    statement_timeout: float = STATEMENT_TIMEOUT_OPTION,
    large_table_mb: float = LARGE_TABLE_MB_OPTION,
    policy: Path | None = POLICY_OPTION,
    output: OutputFormat = FORMAT_OPTION,
) -> int:
    """Fork production, apply and validate there, then promote or discard."""
    request = MigrateRequest(
        database=database,
        migrations=migrations,
        strategy=strategy,
        test_command=test_command,
        expected_schema=expected_schema,
        approvals=tuple(approve),
        limits=Limits(lock_timeout, statement_timeout),
        large_table_bytes=int(large_table_mb * 1024 * 1024),
        policy_path=policy,
    )
    result = run(request, progress=_progress)
    if output is OutputFormat.JSON:
        _echo_json(result.summary())
    else:
        _print_run(result)
    return result.exit_code


def _progress(step: str, message: str) -> None:
    typer.echo(f"[daw migrate] {step}: {message}", err=True)


def _print_run(result: RunResult) -> None:
    typer.echo(f"run {result.run_id}: {result.status}")
    if result.message:
        typer.echo(result.message)
    if result.plan.blocked:
        typer.echo(f"gate: blocks production: {blocking_reasons(result.plan.verdict)}")
    else:
        typer.echo("gate: passes")
    for check in result.checks:
        typer.echo(f"  check {check.name}: {check.status}: {check.message}")
        for detail in check.details[:20]:
            typer.echo(f"    {detail}")
    for line in (result.impact or {}).get("predictions", []):
        typer.echo(f"  impact: {line}")
    typer.echo(
        "production was changed"
        if result.production_changed
        else "production is unchanged"
    )
    if result.report_path:
        typer.echo(f"report: {result.report_path}")


SERVER_OPTION = typer.Option(
    None,
    "--database",
    "-d",
    metavar="URL",
    help="Also look for template forks on this database's server.",
)


@migrate_app.command("forks")
def forks_command(
    database: str | None = SERVER_OPTION, output: OutputFormat = FORMAT_OPTION
) -> int:
    """List forks recorded in the state folder (and template forks on a server)."""
    state = forks.ForkState(forks.default_state_dir())
    servers = [parse_url(database)] if database else []
    listings = forks.list_forks(state, servers)
    if output is OutputFormat.JSON:
        _echo_json({"forks": [listing.summary() for listing in listings]})
        return 0
    if not listings:
        typer.echo("no forks")
    for listing in listings:
        orphan = "orphan" if listing.orphan else f"pid {listing.pid} alive"
        typer.echo(
            f"{listing.name}  {listing.strategy}  {orphan}  {listing.location}  "
            f"created {listing.created_at}"
        )
    return 0


@migrate_app.command("cleanup")
def cleanup_command(
    database: str | None = SERVER_OPTION,
    all_forks: bool = ALL_FORKS_OPTION,
) -> int:
    """Discard orphaned forks (whose run is gone), or every fork with --all."""
    state = forks.ForkState(forks.default_state_dir())
    servers = [parse_url(database)] if database else []
    removed = forks.cleanup(state, servers, orphans_only=not all_forks)
    for listing in removed:
        typer.echo(f"discarded {listing.name} ({listing.strategy})")
    if not removed:
        typer.echo("no fork to discard")
    return 0


@migrate_app.command("schema")
def schema_command(
    database: str = SCHEMA_DATABASE_OPTION,
    output_path: Path | None = OUTPUT_PATH_OPTION,
) -> int:
    """Write the database's schema as JSON, for daw migrate run --expected-schema."""
    text = render_schema(schema_dump(parse_url(database)))
    if output_path is None:
        typer.echo(text, nl=False)
    else:
        write_file(output_path, text, "schema")
    return 0

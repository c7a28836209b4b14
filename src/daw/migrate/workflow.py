"""The migration workflow: plan, then fork, rehearse, validate, promote, discard.

``run`` never applies a migration to production before it ran on a fork, every
validation check passed and the ``migration`` policy gate allowed it. The fork
is discarded in a ``finally`` block. A fork left behind by a killed run is
found by its state file (or database label), and the next run drops it in its
orphan cleanup, which runs first.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daw.check import new_run_id
from daw.errors import UsageError
from daw.migrate import forks
from daw.migrate.dburl import DatabaseUrl, connect, parse_url
from daw.migrate.errors import MigrationError
from daw.migrate.forks import Fork, ForkError, ForkState
from daw.migrate.lint import DESTRUCTIVE, LOCK_RISK, TOOL, LintContext, lint_statements
from daw.migrate.measure import (
    LockSampler,
    TableSize,
    predict_impact,
    sqlite_table_sizes,
    table_sizes,
)
from daw.migrate.promote import Limits, apply_migrations, promote
from daw.migrate.sources import AlembicSource, Migration, SqlFolderSource, load_source
from daw.migrate.validate import (
    CheckResult,
    ValidationRequest,
    count_rows,
    load_schema_file,
    validate_fork,
)
from daw.models import Finding, Measurement
from daw.policy.evaluation import evaluate
from daw.policy.loading import load_policy
from daw.policy.model import Waiver
from daw.policy.verdict import Verdict
from daw.stages import Stage

log = logging.getLogger(__name__)

DEFAULT_LARGE_TABLE_BYTES = 100 * 1024 * 1024
PAUSE_ENV = "DAW_MIGRATE_PAUSE_AFTER_FORK"

Progress = Callable[[str, str], None]
"""Called with (step, message) as each step finishes."""


@dataclass(frozen=True)
class MigrateRequest:
    """The request of ``daw migrate plan`` or ``run``.

    ``large_table_bytes`` is the size from which the linter treats a table as
    large (default 100 MiB: a full rewrite or scan of such a table under a
    strong lock takes seconds or more on common hardware, an estimate).
    ``approvals`` are finding fingerprints approved on the command line.
    """

    database: str
    migrations: Path
    strategy: str | None = None
    test_command: str | Sequence[str] | None = None
    expected_schema: Path | None = None
    approvals: tuple[str, ...] = ()
    large_table_bytes: int = DEFAULT_LARGE_TABLE_BYTES
    limits: Limits = field(default_factory=Limits)
    policy_path: Path | None = None
    repo: Path = field(default_factory=Path.cwd)
    state_dir: Path | None = None
    test_timeout_s: float = 1800.0


@dataclass
class Plan:
    """The plan of a run: pending migrations, findings, verdict and fork strategy."""

    url: DatabaseUrl
    source: SqlFolderSource | AlembicSource
    pending: list[Migration]
    findings: list[Finding]
    verdict: Verdict
    strategy: str | None
    rejected: dict[str, str]
    approvals: tuple[str, ...]

    @property
    def blocked(self) -> bool:
        return self.verdict.status.value == "block"

    def summary(self) -> dict[str, Any]:
        return {
            "database": self.url.redacted(),
            "pending": [
                {
                    "version": m.version,
                    "path": m.path,
                    "statements": len(m.statements),
                    "transactional": m.transactional,
                    "declared_row_changes": sorted(m.declared_row_changes),
                }
                for m in self.pending
            ],
            "findings": [f.model_dump(mode="json") for f in self.findings],
            "gate": _gate_summary(self.verdict),
            "blocked": self.blocked,
            "approvals": list(self.approvals),
            "strategy": self.strategy,
            "strategies_rejected": dict(sorted(self.rejected.items())),
            "steps": self.steps(),
        }

    def steps(self) -> list[str]:
        if not self.pending:
            return ["nothing to do: no pending migration"]
        fork = self.strategy or "no strategy is available"
        steps = [
            f"fork {self.url.redacted()} with the {fork} strategy",
            f"apply {len(self.pending)} migrations to the fork, sampling locks",
            "validate the fork: constraints, indexes, row counts, schema, tests",
        ]
        if self.blocked:
            steps.append("do not promote: the migration gate blocks production")
        else:
            steps.append("apply to production if every check passes")
        steps.append("discard the fork")
        return steps


def _gate_summary(verdict: Verdict) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "status": c.status.value,
            "blocking": c.blocking,
            "reason": c.reason,
            "findings": list(c.findings),
        }
        for c in verdict.criteria
        if c.gate == "migration"
    ]


def plan(request: MigrateRequest) -> Plan:
    """Inspect production and the migrations without changing anything.

    Raises UsageError for an invalid numeric setting, and MigrationError (and
    its subclasses) for an invalid URL or source.
    """
    check_request(request)
    url = parse_url(request.database)
    source = load_source(request.migrations.resolve())
    pending, context = _inspect(url, source, request.large_table_bytes)
    statements = [s for migration in pending for s in migration.statements]
    findings = lint_statements(statements, context) if statements else []
    verdict = evaluate_gate(findings, request)
    choice = forks.choose_strategy(url, request.strategy) if pending else None
    return Plan(
        url=url,
        source=source,
        pending=pending,
        findings=findings,
        verdict=verdict,
        strategy=choice.strategy.name if choice and choice.strategy else None,
        rejected=dict(choice.rejected) if choice else {},
        approvals=tuple(sorted(set(request.approvals))),
    )


def check_request(request: MigrateRequest) -> None:
    """Raise UsageError for a negative or non-finite size, timeout or limit."""
    request.limits.check()
    if request.large_table_bytes < 0:
        raise UsageError(
            f"invalid large-table size {request.large_table_bytes} bytes: "
            "expected 0 or more",
            hint="give --large-table-mb as a number of MiB such as 100",
        )
    timeout = request.test_timeout_s
    if not math.isfinite(timeout) or timeout <= 0:
        raise UsageError(
            f"invalid test command timeout {timeout}: expected seconds above 0",
            hint="give the timeout as a number of seconds such as 1800",
        )


def _inspect(
    url: DatabaseUrl, source: SqlFolderSource | AlembicSource, large_bytes: int
) -> tuple[list[Migration], LintContext]:
    if isinstance(source, AlembicSource):
        pending = source.migrations(url.render())
        conn = connect(url, autocommit=True)
    else:
        conn = connect(url, autocommit=True)
    try:
        if isinstance(source, SqlFolderSource):
            pending = source.pending(conn)
        context = lint_context(conn, url, large_bytes)
    finally:
        conn.close()
    return pending, context


def lint_context(conn, url: DatabaseUrl, large_bytes: int) -> LintContext:
    """Return the linter's view of the live database: tables, sizes, column types."""
    if url.kind == "sqlite":
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        ).fetchall()
        return LintContext(existing_tables=frozenset(r[0].lower() for r in rows))
    sizes = table_sizes(conn)
    existing, large = set(), set()
    for name, size in sizes.items():
        schema, table = name.lower().split(".", 1)
        existing |= {name.lower(), table} if schema == "public" else {name.lower()}
        if size.bytes is not None and size.bytes >= large_bytes:
            large |= {name.lower(), table} if schema == "public" else {name.lower()}
    columns = conn.execute(
        "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
        " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    types = {}
    for schema, table, column, kind in columns:
        types[f"{schema}.{table}.{column}".lower()] = kind
        if schema == "public":
            types[f"{table}.{column}".lower()] = kind
    return LintContext(frozenset(existing), frozenset(large), types)


def evaluate_gate(findings: Sequence[Finding], request: MigrateRequest) -> Verdict:
    """Evaluate the policy at stage production, with command-line approvals as waivers.

    An approval is a waiver of one finding fingerprint that expires today, owned
    by the OS user who gave it.
    """
    policy, _sources = load_policy(request.repo, request.policy_path, "production")
    now = dt.datetime.now(dt.UTC)
    owner = _user()
    approvals = [
        Waiver(
            fingerprint=fingerprint,
            reason="approved with --approve on the daw migrate command line",
            owner=owner,
            expires=now.date(),
        )
        for fingerprint in sorted(set(request.approvals))
    ]
    policy = policy.model_copy(update={"waivers": [*policy.waivers, *approvals]})
    measurements = [
        Measurement(metric=category, tool=TOOL, value=float(count), unit="statements")
        for category, count in _counts(findings).items()
    ]
    return evaluate(
        policy,
        measurements,
        findings,
        stage=Stage.PRODUCTION,
        environment="production",
        at=now,
    )


def _counts(findings: Sequence[Finding]) -> dict[str, int]:
    counts = {DESTRUCTIVE: 0, LOCK_RISK: 0}
    for finding in findings:
        if finding.category in counts:
            counts[finding.category] += 1
    return counts


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@dataclass
class RunResult:
    """The outcome of ``run``; ``status`` is one of ``STATUSES``.

    ``production_changed`` is True only when the migrations were promoted (or a
    non-transactional promotion failed part-way).
    """

    run_id: str
    status: str
    plan: Plan
    fork: dict[str, Any] | None = None
    rehearsal: dict[str, Any] | None = None
    impact: dict[str, Any] | None = None
    checks: list[CheckResult] = field(default_factory=list)
    promotion: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    cleaned_orphans: list[str] = field(default_factory=list)
    production_changed: bool = False
    report_path: str | None = None
    message: str = ""

    @property
    def exit_code(self) -> int:
        return 0 if self.status in ("promoted", "nothing-to-do") else 1

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "message": self.message,
            "production_changed": self.production_changed,
            "plan": self.plan.summary(),
            "fork": self.fork,
            "rehearsal": self.rehearsal,
            "impact": self.impact,
            "checks": [check.summary() for check in self.checks],
            "promotion": self.promotion,
            "steps": self.steps,
            "cleaned_orphans": self.cleaned_orphans,
        }


STATUSES = (
    "promoted",
    "nothing-to-do",
    "blocked",
    "failed-on-fork",
    "validation-failed",
    "promotion-failed",
)


class _Steps:
    """Times each step and reports it to the progress callback."""

    def __init__(self, result: RunResult, progress: Progress | None) -> None:
        self.result = result
        self.progress = progress

    def done(self, step: str, started: float, message: str) -> None:
        seconds = time.monotonic() - started
        self.result.steps.append(
            {"step": step, "seconds": round(seconds, 4), "message": message}
        )
        log.info("%s: %s (%.2f s)", step, message, seconds)
        if self.progress is not None:
            self.progress(step, f"{message} ({seconds:.2f} s)")


def run(request: MigrateRequest, progress: Progress | None = None) -> RunResult:
    """Fork, rehearse, validate and, when everything passes, promote; always discard.

    Returns the result (also written as JSON under ``.daw/migrations``). Raises
    UsageError or MigrationError for problems found before the fork: an invalid
    setting, URL or source, no usable fork strategy, an unreadable
    expected-schema file. Errors during promotion are returned in the result
    with status ``promotion-failed``.
    """
    check_request(request)
    expected = (
        load_schema_file(request.expected_schema) if request.expected_schema else None
    )
    state = ForkState(request.state_dir or forks.default_state_dir(request.repo))
    run_id = new_run_id(dt.datetime.now(dt.UTC))
    started = time.monotonic()
    url = parse_url(request.database)
    servers = [url] if url.kind == "postgresql" else []
    cleaned = [listing.name for listing in forks.cleanup(state, servers)]

    the_plan = plan(request)
    result = RunResult(run_id, "nothing-to-do", the_plan, cleaned_orphans=cleaned)
    steps = _Steps(result, progress)
    steps.done("plan", started, _plan_message(the_plan, cleaned))
    if not the_plan.pending:
        result.message = "no pending migration"
        return _finish(result, state)
    if the_plan.strategy is None:
        raise ForkError(
            f"no fork strategy can fork {url.redacted()}: "
            + forks.StrategyChoice(None, the_plan.rejected).describe(),
            hint="fix one of the causes above, or choose one with --strategy",
        )
    _rehearse_and_promote(request, result, state, steps, expected)
    return _finish(result, state)


def _plan_message(the_plan: Plan, cleaned: list[str]) -> str:
    parts = [f"{len(the_plan.pending)} pending migrations"]
    parts.append(f"{len(the_plan.findings)} lint findings")
    parts.append("gate blocks production" if the_plan.blocked else "gate passes")
    if cleaned:
        parts.append(f"dropped orphan forks {', '.join(cleaned)}")
    return ", ".join(parts)


def _rehearse_and_promote(
    request: MigrateRequest,
    result: RunResult,
    state: ForkState,
    steps: _Steps,
    expected: dict[str, Any] | None,
) -> None:
    the_plan = result.plan
    strategy = forks.get_strategy(the_plan.strategy or "")
    started = time.monotonic()
    fork = strategy.create(the_plan.url, result.run_id, state)
    result.fork = fork.summary()
    steps.done(
        "fork",
        started,
        f"{fork.strategy} fork {fork.name}, {_megabytes(fork.bytes_copied)} copied",
    )
    try:
        _pause_after_fork()
        ok = _rehearse(request, result, fork, steps, expected)
        if ok:
            _promote_step(request, result, steps)
    finally:
        started = time.monotonic()
        forks.discard_fork(fork, state)
        steps.done("discard", started, f"discarded fork {fork.name}")


def _pause_after_fork() -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        log.warning("pausing %s s after the fork (%s is set)", seconds, PAUSE_ENV)
        time.sleep(float(seconds))


def _rehearse(
    request: MigrateRequest,
    result: RunResult,
    fork: Fork,
    steps: _Steps,
    expected: dict[str, Any] | None,
) -> bool:
    the_plan = result.plan
    started = time.monotonic()
    rows_before = count_rows(fork.url)
    sizes_before = _sizes(fork.url)
    applied, locks, sampler_error = _apply_sampled(fork.url, the_plan)
    sizes_after = _sizes(fork.url)
    result.rehearsal = applied.summary()
    result.impact = predict_impact(
        applied.recorder.timings, locks, sizes_before, sizes_after
    )
    result.impact["sampler_error"] = sampler_error
    if not applied.ok:
        steps.done("apply to fork", started, f"failed: {applied.error}")
        result.status = "failed-on-fork"
        result.message = f"the migration failed on the fork: {applied.error}"
        result.message += _gate_note(the_plan)
        return False
    steps.done("apply to fork", started, f"{len(applied.applied)} migrations applied")

    started = time.monotonic()
    declared = set().union(*(m.declared_row_changes for m in the_plan.pending))
    checks = validate_fork(
        fork.url,
        ValidationRequest(
            rows_before=rows_before,
            declared_row_changes=declared,
            expected_schema=expected,
            test_command=request.test_command,
            test_timeout_s=request.test_timeout_s,
            cwd=request.repo,
        ),
    )
    if sampler_error:
        checks.append(CheckResult("lock_sampling", "error", sampler_error))
    result.checks = checks
    failed = [check for check in checks if not check.passed]
    steps.done(
        "validate",
        started,
        f"{len(checks) - len(failed)} of {len(checks)} checks passed",
    )
    if failed:
        result.status = "validation-failed"
        result.message = "validation failed: " + "; ".join(
            f"{check.name}: {check.message}" for check in failed
        )
        result.message += _gate_note(the_plan)
        return False
    return True


def _gate_note(the_plan: Plan) -> str:
    """Return a sentence naming the blocking gate criteria, or "" when it passes."""
    if not the_plan.blocked:
        return ""
    return ". The migration gate would also block production: " + blocking_reasons(
        the_plan.verdict
    )


def blocking_reasons(verdict: Verdict) -> str:
    """Return the criteria that block production with their reasons, joined by "; "."""
    reasons = [f"{c.id}: {c.reason}" for c in verdict.criteria if c.blocking]
    return "; ".join(reasons) or "see the gate in the report"


def _apply_sampled(url: DatabaseUrl, the_plan: Plan):
    if url.kind != "postgresql":
        applied = apply_migrations(url, the_plan.source, the_plan.pending)
        return applied, [], None
    samplers: list[LockSampler] = []

    def start_sampler(conn) -> None:
        sampler = LockSampler(url, pid=conn.info.backend_pid)
        sampler.start()
        samplers.append(sampler)

    alembic = isinstance(the_plan.source, AlembicSource)
    if alembic:
        start_sampler_for_all = LockSampler(url, pid=None)
        start_sampler_for_all.start()
        samplers.append(start_sampler_for_all)
    try:
        applied = apply_migrations(
            url,
            the_plan.source,
            the_plan.pending,
            on_connect=None if alembic else start_sampler,
        )
    finally:
        locks = [lock for sampler in samplers for lock in sampler.stop()]
    errors = [sampler.error for sampler in samplers if sampler.error]
    return applied, locks, "; ".join(errors) or None


def _sizes(url: DatabaseUrl) -> dict[str, TableSize]:
    conn = connect(url, autocommit=True)
    try:
        if url.kind == "sqlite":
            return sqlite_table_sizes(conn)
        return table_sizes(conn, analyze=True)
    finally:
        conn.close()


def _promote_step(request: MigrateRequest, result: RunResult, steps: _Steps) -> None:
    the_plan = result.plan
    started = time.monotonic()
    if the_plan.blocked:
        result.status = "blocked"
        result.message = (
            "the migration gate blocks production: approve the destructive findings "
            "with --approve FINGERPRINT or a waiver in the policy"
        )
        steps.done("promote", started, "skipped: the migration gate blocks production")
        return
    try:
        promoted = promote(
            the_plan.url, the_plan.source, the_plan.pending, limits=request.limits
        )
    except MigrationError as exc:
        log.error("promotion failed before any migration ran: %s", exc.message)
        result.status = "promotion-failed"
        result.message = f"promotion failed: {exc.message}"
        result.promotion = {"applied": [], "error": exc.message, "partial": False}
        steps.done("promote", started, result.message)
        return
    result.promotion = promoted.summary()
    if promoted.ok:
        result.status = "promoted"
        result.production_changed = True
        result.message = f"applied {len(promoted.applied)} migrations to production"
        steps.done("promote", started, result.message)
        return
    result.status = "promotion-failed"
    result.production_changed = promoted.partial
    result.message = f"promotion failed: {promoted.error}"
    steps.done("promote", started, result.message)


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


def _finish(result: RunResult, state: ForkState) -> RunResult:
    folder = state.folder.parent / "migrations"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{result.run_id}.json"
        path.write_text(json.dumps(result.summary(), indent=2, sort_keys=True) + "\n")
        result.report_path = str(path)
    except OSError as exc:
        log.error("cannot write the migration report in %s: %s", folder, exc)
        raise MigrationError(
            f"cannot write the migration report in {folder}: {exc.strerror}",
            hint="make the folder writable or set DAW_STATE_DIR",
        ) from exc
    return result

"""Findings, measurements and a record builder shared by the report tests.

Verdicts come from the real default policy (load_policy) and the real evaluate().
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from daw.models import Finding, Measurement, MeasurementStatus, fingerprint
from daw.policy.evaluation import evaluate
from daw.policy.loading import load_policy
from daw.run import RunRecord
from daw.stages import Stage

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
CREATED_AT = "2026-03-01T11:59:30+00:00"
RUN_ID = "20260301T115930-3f9c2a7b1d04"
COMMIT = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

TOOL_VERSIONS = {
    "bandit": "1.9.2",
    "coverage": "7.6.1",
    "detect-secrets": "1.5.0",
    "mypy": "1.13.0",
    "pytest": "8.3.3",
    "ruff": "0.8.1",
}


def make_finding(
    category: str,
    tool: str,
    rule_id: str,
    path: str | None,
    line: int | None,
    message: str,
    snippet: str,
    **extra: object,
) -> Finding:
    """Build a Finding whose fingerprint is computed as probes compute it."""
    return Finding(
        category=category,
        tool=tool,
        rule_id=rule_id,
        path=path,
        line=line,
        message=message,
        fingerprint=fingerprint(tool, rule_id, path, snippet),
        **extra,  # type: ignore[arg-type]
    )


def measured(
    metric: str, tool: str, value: float | None = None, unit: str = ""
) -> Measurement:
    """Build an ok Measurement with the tool's version from TOOL_VERSIONS."""
    return Measurement(
        metric=metric,
        value=value,
        unit=unit,
        tool=tool,
        tool_version=TOOL_VERSIONS.get(tool, ""),
        inputs_digest=fingerprint(metric, tool),
    )


LINT_UNUSED = make_finding(
    "lint",
    "ruff",
    "F401",
    "src/app.py",
    1,
    "`os` imported but unused",
    "import os",
    severity="low",
)
LINT_NONE = make_finding(
    "lint",
    "ruff",
    "E711",
    "src/app.py",
    7,
    "Comparison to `None` should be `cond is None`",
    "if x == None:",
    severity="low",
)
SAST_SHELL = make_finding(
    "sast",
    "bandit",
    "B602",
    "src/run.py",
    12,
    "subprocess call with shell=True identified, security issue.",
    "subprocess.call(cmd, shell=True)",
    tool_severity="HIGH",
    tool_confidence="HIGH",
)
SAST_EVAL = make_finding(
    "sast",
    "bandit",
    "B307",
    "src/run.py",
    20,
    "Use of possibly insecure function - consider using safer ast.literal_eval.",
    "eval(text)",
    tool_severity="MEDIUM",
    tool_confidence="HIGH",
)
SAST_IMPORTED = make_finding(
    "sast",
    "semgrep",
    "python.lang.security.audit.formatted-sql-query",
    "src/db.py",
    33,
    "Detected possible formatted SQL query | use parameters",
    'cur.execute(f"SELECT {x}")',
    score=9.8,
    tool_severity="error",
)
SECRET = make_finding(
    "secret",
    "detect-secrets",
    "Secret Keyword",
    "config/settings.py",
    3,
    "Secret Keyword found (value not shown)",
    "API_KEY = <redacted>",
    severity="high",
)

STANDARD_FINDINGS = (
    LINT_UNUSED,
    LINT_NONE,
    SAST_SHELL,
    SAST_EVAL,
    SAST_IMPORTED,
    SECRET,
)


def standard_measurements() -> list[Measurement]:
    """Measurements of a merge check with a block, an error, a warning and passes."""
    return [
        measured("lint", "ruff", 2, "errors"),
        measured("sast", "bandit", 2, "findings"),
        measured("sast", "semgrep", 1, "findings"),
        measured("secret", "detect-secrets", 1, "secrets"),
        measured("type", "mypy", 0, "errors"),
        measured("coverage_new_code", "coverage", 72.5, "%"),
        measured("coverage_total", "coverage", 75, "%"),
        measured("api_p95_ms", "k6", 620, "ms"),
        Measurement(
            metric="test",
            status=MeasurementStatus.ERROR,
            tool="pytest",
            tool_version=TOOL_VERSIONS["pytest"],
            reason="timed out after 600 s",
        ),
    ]


def waiver_policy() -> str:
    """A project policy with an applied, an expired and an unused waiver."""
    return (
        "waivers:\n"
        f"  - fingerprint: {SECRET.fingerprint}\n"
        "    reason: test key, rotated\n"
        "    owner: alice\n"
        "    expires: 2026-06-30\n"
        f"  - fingerprint: {LINT_UNUSED.fingerprint}\n"
        "    reason: kept for the plugin API\n"
        "    owner: bob\n"
        "    expires: 2026-02-01\n"
        "  - criterion: code_quality.coverage_total\n"
        "    reason: legacy code | being split\n"
        "    owner: carol\n"
        "    expires: 2026-12-31\n"
    )


def build_record(
    policy_dir: Path,
    measurements: Sequence[Measurement],
    findings: Sequence[Finding] = (),
    *,
    stage: Stage = Stage.MERGE,
    environment: str = "development",
    policy_text: str | None = None,
    run_id: str = RUN_ID,
    commit: str | None = COMMIT,
    dirty: bool = False,
) -> RunRecord:
    """Evaluate the inputs with the default policy plus ``policy_text`` into a record.

    ``policy_text`` is written to ``policy_dir``/policy.yaml when given.
    """
    policy_path = None
    if policy_text is not None:
        policy_path = policy_dir / "policy.yaml"
        policy_path.write_text(policy_text, encoding="utf-8")
    policy, sources = load_policy(policy_dir, policy_path, environment)
    verdict = evaluate(
        policy, measurements, findings, stage=stage, environment=environment, at=AT
    )
    return RunRecord(
        run_id=run_id,
        created_at=CREATED_AT,
        repo="/work/example",
        commit=commit,
        base="main",
        base_commit="1111111111111111111111111111111111111111",
        stage=stage.value,
        environment=environment,
        dirty=dirty,
        tool_versions=TOOL_VERSIONS,
        policy=policy.canonical(),
        policy_sources=[source.path for source in sources],
        measurements=list(measurements),
        findings=list(findings),
        verdict=verdict,
    )

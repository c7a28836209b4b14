"""Evaluation: statuses per stage, fail-closed errors, waivers and determinism."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from daw.models import Finding, Measurement, MeasurementStatus, fingerprint
from daw.policy.evaluation import NOT_MEASURED, evaluate
from daw.policy.loading import deep_merge, default_source, load_policy, validate
from daw.policy.model import Policy
from daw.policy.verdict import OverallStatus, Status
from daw.stages import Stage

AT = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    effective, _ = load_policy(tmp_path)
    return effective


def with_overrides(data: dict) -> Policy:
    source = default_source()
    return validate(deep_merge(source.data, data), [source])


def ok(metric: str, value: float | None = None, tool: str = "tool") -> Measurement:
    return Measurement(metric=metric, value=value, tool=tool, tool_version="1.0")


def lint_finding(rule: str = "F401", path: str = "a.py") -> Finding:
    return Finding(
        category="lint",
        tool="ruff",
        rule_id=rule,
        message="unused import",
        path=path,
        line=1,
        severity="medium",
        fingerprint=fingerprint("ruff", rule, path, "import os"),
    )


def bandit_finding(severity: str, confidence: str) -> Finding:
    return Finding(
        category="sast",
        tool="bandit",
        rule_id="B602",
        message="shell=True",
        path="a.py",
        line=3,
        tool_severity=severity,
        tool_confidence=confidence,
        fingerprint=fingerprint("bandit", "B602", "a.py", severity + confidence),
    )


def run(policy: Policy, measurements, findings=(), stage=Stage.MERGE, at=AT):
    return evaluate(
        policy,
        measurements,
        list(findings),
        stage=stage,
        environment="development",
        at=at,
    )


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        (Stage.COMMIT, Status.BLOCK),
        (Stage.MERGE, Status.BLOCK),
        (Stage.PRODUCTION, Status.BLOCK),
    ],
)
def test_lint_errors_block_from_commit(policy, stage, expected):
    verdict = run(policy, [ok("lint", 1)], [lint_finding()], stage=stage)
    result = verdict.criterion("code_quality.lint_errors")
    assert result.status is expected
    assert result.blocking
    assert result.value == 1
    assert verdict.status is OverallStatus.BLOCK


@pytest.mark.parametrize(
    ("stage", "expected", "blocking"),
    [
        (Stage.COMMIT, Status.WARN, False),
        (Stage.MERGE, Status.WARN, False),
        (Stage.RELEASE, Status.BLOCK, True),
        (Stage.PRODUCTION, Status.BLOCK, True),
    ],
)
def test_coverage_total_blocks_from_release(policy, stage, expected, blocking):
    verdict = run(policy, [ok("coverage_total", 55.5)], stage=stage)
    result = verdict.criterion("code_quality.coverage_total")
    assert result.status is expected
    assert result.blocking is blocking
    assert "55.5 %" in result.reason


def test_passing_value_passes(policy):
    verdict = run(policy, [ok("coverage_total", 70)])
    result = verdict.criterion("code_quality.coverage_total")
    assert result.status is Status.PASS
    assert result.reason == "70 >= 70 %"


def test_unmeasured_criteria_are_not_applicable(policy):
    verdict = run(policy, [])
    for criterion_id in (
        "performance.api_p95_ms",
        "uat.p0_journeys",
        "uat.visual_regression",
    ):
        result = verdict.criterion(criterion_id)
        assert result.status is Status.NOT_APPLICABLE
        assert result.reason == NOT_MEASURED
    assert verdict.status is OverallStatus.PASS


def test_error_blocks_where_criterion_blocks(policy):
    failed = Measurement(
        metric="sast", status=MeasurementStatus.ERROR, tool="bandit", reason="timed out"
    )
    merge = run(policy, [failed], stage=Stage.MERGE)
    commit = run(policy, [failed], stage=Stage.COMMIT)
    assert merge.criterion("security.sast_critical").status is Status.ERROR
    assert merge.criterion("security.sast_critical").blocking
    assert merge.status is OverallStatus.BLOCK
    assert commit.criterion("security.sast_critical").status is Status.ERROR
    assert not commit.criterion("security.sast_critical").blocking
    assert commit.status is OverallStatus.WARN
    assert "bandit: timed out" in merge.criterion("security.sast_critical").reason


def test_one_error_among_tools_is_error(policy):
    measurements = [
        ok("lint", 0, tool="ruff"),
        Measurement(
            metric="lint", status=MeasurementStatus.ERROR, tool="eslint", reason="x"
        ),
    ]
    verdict = run(policy, measurements, stage=Stage.COMMIT)
    assert verdict.criterion("code_quality.lint_errors").status is Status.ERROR
    assert verdict.status is OverallStatus.BLOCK


def test_not_applicable_measurement(policy):
    na = Measurement(
        metric="tsconfig",
        status=MeasurementStatus.NOT_APPLICABLE,
        tool="tsconfig",
        reason="no tsconfig",
    )
    verdict = run(policy, [na])
    result = verdict.criterion("code_quality.typescript_strict")
    assert result.status is Status.NOT_APPLICABLE
    assert result.reason == "tsconfig: no tsconfig"


@pytest.mark.parametrize(
    ("severity", "confidence", "criterion"),
    [
        ("HIGH", "HIGH", "security.sast_critical"),
        ("HIGH", "LOW", "security.sast_high"),
        ("MEDIUM", "HIGH", "security.sast_high"),
    ],
)
def test_bandit_severity_mapping(policy, severity, confidence, criterion):
    verdict = run(
        policy, [ok("sast", 1, tool="bandit")], [bandit_finding(severity, confidence)]
    )
    assert verdict.criterion(criterion).value == 1
    assert verdict.findings[0].severity in ("critical", "high")


def test_medium_bandit_is_not_counted(policy):
    verdict = run(
        policy, [ok("sast", 1, tool="bandit")], [bandit_finding("MEDIUM", "LOW")]
    )
    assert verdict.criterion("security.sast_critical").value == 0
    assert verdict.criterion("security.sast_high").value == 0
    assert verdict.findings[0].severity == "medium"


def test_policy_changes_severity_mapping():
    policy = with_overrides({"severity": {"bandit": {"MEDIUM/*": "critical"}}})
    verdict = run(
        policy, [ok("sast", 1, tool="bandit")], [bandit_finding("MEDIUM", "LOW")]
    )
    assert verdict.criterion("security.sast_critical").value == 1


@pytest.mark.parametrize(
    ("score", "severity"),
    [(9.0, "critical"), (8.9, "high"), (4.0, "medium"), (3.9, "low")],
)
def test_sarif_score_mapping(policy, score, severity):
    finding = Finding(
        category="sast",
        tool="semgrep",
        rule_id="r",
        message="m",
        score=score,
        tool_severity="warning",
        fingerprint="f",
    )
    verdict = run(policy, [ok("sast", 1, tool="semgrep")], [finding])
    assert verdict.findings[0].severity == severity


def test_finding_waiver_removes_it_from_count():
    target = lint_finding()
    waiver = {
        "fingerprint": target.fingerprint,
        "reason": "generated",
        "owner": "ana",
        "expires": "2026-12-31",
    }
    policy = with_overrides({"waivers": [waiver]})
    verdict = run(policy, [ok("lint", 1)], [target], stage=Stage.COMMIT)
    assert verdict.criterion("code_quality.lint_errors").status is Status.PASS
    assert verdict.findings[0].waived
    assert verdict.waivers[0].state.value == "applied"


def test_expired_waiver_no_longer_applies():
    target = lint_finding()
    waiver = {
        "fingerprint": target.fingerprint,
        "reason": "generated",
        "owner": "ana",
        "expires": "2026-12-03",
    }
    policy = with_overrides({"waivers": [waiver]})
    verdict = run(policy, [ok("lint", 1)], [target], stage=Stage.COMMIT)
    assert verdict.criterion("code_quality.lint_errors").status is Status.BLOCK
    assert not verdict.findings[0].waived
    assert verdict.waivers[0].state.value == "expired"


def test_waiver_applies_on_expiry_day():
    waiver = {
        "criterion": "code_quality.lint_errors",
        "reason": "migration",
        "owner": "ana",
        "expires": "2026-12-04",
    }
    policy = with_overrides({"waivers": [waiver]})
    verdict = run(policy, [ok("lint", 1)], [lint_finding()], stage=Stage.COMMIT)
    result = verdict.criterion("code_quality.lint_errors")
    assert result.status is Status.WARN
    assert not result.blocking
    assert "waived by ana until 2026-12-04" in result.reason


def test_disabled_criterion():
    policy = with_overrides(
        {"gates": {"code_quality": {"lint_errors": {"enabled": False}}}}
    )
    verdict = run(policy, [ok("lint", 1)], [lint_finding()], stage=Stage.COMMIT)
    assert verdict.criterion("code_quality.lint_errors").status is Status.NOT_APPLICABLE
    assert verdict.status is OverallStatus.PASS


def test_dependency_age_takes_maximum(policy):
    findings = [
        Finding(
            category="dependency_age",
            tool="pypi",
            rule_id="outdated-dependency",
            message=name,
            value=days,
            fingerprint=name,
        )
        for name, days in (("a", 10.0), ("b", 120.0))
    ]
    verdict = run(policy, [ok("dependency_age", 2)], findings, stage=Stage.PRODUCTION)
    result = verdict.criterion("security.dependency_age")
    assert result.value == 120
    assert result.status is Status.WARN
    assert verdict.status is OverallStatus.WARN


def test_unknown_sca_severity_counts_as_critical(policy):
    finding = Finding(
        category="sca",
        tool="osv",
        rule_id="unresolved-dependency",
        message="x",
        severity="unknown",
        fingerprint="u",
    )
    verdict = run(policy, [ok("sca", 1, tool="osv")], [finding])
    assert verdict.criterion("security.sca_critical").status is Status.BLOCK


def test_same_inputs_give_identical_json(policy):
    findings = [lint_finding("F401", "b.py"), lint_finding("E501", "a.py")]
    first = run(policy, [ok("lint", 2), ok("coverage_total", 90)], findings)
    second = run(
        policy, [ok("coverage_total", 90), ok("lint", 2)], list(reversed(findings))
    )
    assert first.model_dump_json() == second.model_dump_json()


def test_criteria_are_stably_ordered(policy):
    ids = [c.id for c in run(policy, []).criteria]
    assert ids[0].startswith("code_quality.")
    assert ids[-1].startswith("migration.")
    assert len(ids) == 19

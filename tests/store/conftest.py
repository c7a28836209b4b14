"""Run records for store tests, with verdicts from the real policy and evaluate()."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from daw.models import Finding, Measurement, MeasurementStatus, fingerprint
from daw.policy.evaluation import evaluate
from daw.policy.loading import load_policy
from daw.run import ProbeSummary, RunRecord
from daw.stages import Stage

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

MakeRecord = Callable[..., RunRecord]


def _inputs() -> tuple[list[Measurement], list[Finding]]:
    finding = Finding(
        category="lint",
        tool="ruff",
        rule_id="F401",
        path="src/app.py",
        line=1,
        message="`os` imported but unused",
        severity="low",
        fingerprint=fingerprint("ruff", "F401", "src/app.py", "import os"),
    )
    measurements = [
        Measurement(
            metric="lint",
            value=1,
            unit="errors",
            tool="ruff",
            tool_version="0.8.1",
            inputs_digest="ab" * 32,
        ),
        Measurement(
            metric="coverage_total",
            value=81.25,
            unit="%",
            tool="coverage",
            details={"files": 12, "branch": False},
        ),
        Measurement(
            metric="test",
            status=MeasurementStatus.ERROR,
            tool="pytest",
            reason="timed out after 600 s",
        ),
    ]
    return measurements, [finding]


@pytest.fixture
def make_record(tmp_path: Path) -> MakeRecord:
    """Return a factory of RunRecords evaluated by the default policy."""
    policy, sources = load_policy(tmp_path)
    measurements, findings = _inputs()
    verdict = evaluate(
        policy,
        measurements,
        findings,
        stage=Stage.MERGE,
        environment="development",
        at=AT,
    )

    def factory(
        run_id: str = "20260301T120000-aaaaaa000001",
        created_at: str = "2026-03-01T12:00:00+00:00",
        repo: str = "/work/example",
    ) -> RunRecord:
        return RunRecord(
            run_id=run_id,
            created_at=created_at,
            repo=repo,
            commit="4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            base="main",
            stage="merge",
            environment="development",
            tool_versions={"coverage": "7.6.1", "ruff": "0.8.1"},
            policy=policy.canonical(),
            policy_sources=[source.path for source in sources],
            measurements=measurements,
            findings=findings,
            probes=[ProbeSummary(probe="ruff", duration_s=0.42, cached=True)],
            verdict=verdict,
        )

    return factory

"""The SARIF 2.1.0 report: every finding of a run, one SARIF run per tool.

Code-scanning services read this file. A tool that was asked to report
findings but found none still gets a run with no results, so that the service
can close the alerts it fixed. A tool whose measurement failed gets
``executionSuccessful: false`` with the reason.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from daw.models import Measurement, MeasurementStatus
from daw.policy.evaluation import format_number
from daw.policy.metrics import METRICS
from daw.policy.verdict import EvaluatedFinding
from daw.reports import sorted_findings
from daw.run import RunRecord

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
    "sarif-schema-2.1.0.json"
)
FINGERPRINT_KEY = "dawFingerprint/v1"
SRCROOT = "%SRCROOT%"

LEVELS = {"critical": "error", "high": "error", "medium": "warning"}

# Measurement metrics that are counts of findings, such as "lint" or "sast".
FINDING_CATEGORIES = frozenset(
    spec.source for spec in METRICS.values() if spec.kind != "direct"
)


def render_sarif(record: RunRecord) -> str:
    """Render every finding of ``record``, waived ones as suppressed, as SARIF JSON."""
    findings = sorted_findings(record.verdict)
    measurements = [m for m in record.measurements if m.metric in FINDING_CATEGORIES]
    tools = sorted(
        {item.finding.tool for item in findings} | {m.tool for m in measurements}
    )
    document = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            _run(
                tool,
                record.tool_versions.get(tool),
                [item for item in findings if item.finding.tool == tool],
                [m for m in measurements if m.tool == tool],
            )
            for tool in tools
        ],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def level(severity: str) -> str:
    """Return the SARIF level of an evaluated severity: error, warning or note."""
    return LEVELS.get(severity, "note")


def _run(
    tool: str,
    version: str | None,
    findings: list[EvaluatedFinding],
    measurements: list[Measurement],
) -> dict[str, Any]:
    rule_ids = sorted({item.finding.rule_id for item in findings})
    driver: dict[str, Any] = {
        "name": tool,
        "rules": [_rule(rule_id, findings) for rule_id in rule_ids],
    }
    if version:
        driver["version"] = version
    index = {rule_id: position for position, rule_id in enumerate(rule_ids)}
    return {
        "tool": {"driver": driver},
        "invocations": [_invocation(measurements)],
        "results": [_result(item, index[item.finding.rule_id]) for item in findings],
    }


def _rule(rule_id: str, findings: list[EvaluatedFinding]) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": rule_id}
    scores = [
        item.finding.score
        for item in findings
        if item.finding.rule_id == rule_id and item.finding.score is not None
    ]
    if scores:
        # GitHub code scanning reads security-severity from the rule's properties,
        # so the rule carries the highest score among its results.
        rule["properties"] = {"security-severity": _score(max(scores))}
    return rule


def _invocation(measurements: list[Measurement]) -> dict[str, Any]:
    errors = [m for m in measurements if m.status is MeasurementStatus.ERROR]
    invocation: dict[str, Any] = {"executionSuccessful": not errors}
    if errors:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": f"{m.metric}: {m.reason}"}}
            for m in sorted(errors, key=lambda m: m.metric)
        ]
    return invocation


def _score(score: float) -> str:
    return format_number(score)


def _result(item: EvaluatedFinding, rule_index: int) -> dict[str, Any]:
    finding = item.finding
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": level(item.severity),
        "message": {"text": finding.message or finding.rule_id},
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
    }
    if finding.path is not None:
        result["locations"] = [_location(finding.path, finding.line)]
    if finding.score is not None:
        result["properties"] = {"security-severity": _score(finding.score)}
    if item.waived:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": item.waiver_reason or "waived in the policy",
            }
        ]
    return result


def _location(path: str, line: int | None) -> dict[str, Any]:
    physical: dict[str, Any] = {
        "artifactLocation": {"uri": quote(path, safe="/"), "uriBaseId": SRCROOT}
    }
    if line is not None and line >= 1:
        physical["region"] = {"startLine": line}
    return {"physicalLocation": physical}

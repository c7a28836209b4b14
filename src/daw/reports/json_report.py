"""The JSON report: a stable, documented document of one run for machines.

The layout is described in docs/json-report.md and schemas/report.schema.json.
It holds no wall-clock time of its own and no durations, so replaying a record
renders the same bytes.
"""

from __future__ import annotations

import json
import math
from typing import Any

from daw.models import Measurement
from daw.policy.verdict import CriterionResult, EvaluatedFinding, WaiverResult
from daw.reports import sorted_criteria, sorted_findings
from daw.run import RunRecord

SCHEMA_VERSION = 1


def render_json(record: RunRecord) -> str:
    """Render ``record`` as JSON: keys sorted, 2-space indent, a trailing newline."""
    text = json.dumps(report_data(record), indent=2, sort_keys=True, allow_nan=False)
    return text + "\n"


def report_data(record: RunRecord) -> dict[str, Any]:
    """Build the report document of ``record`` as plain JSON data."""
    verdict = record.verdict
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": record.run_id,
        "repo": record.repo,
        "status": verdict.status.value,
        "stage": verdict.stage,
        "environment": verdict.environment,
        "policy_digest": verdict.policy_digest,
        "commit": record.commit,
        "base": record.base,
        "base_commit": record.base_commit,
        "dirty": record.dirty,
        "all_files": record.all_files,
        "evaluated_at": verdict.evaluated_at,
        "tool_versions": dict(sorted(record.tool_versions.items())),
        "criteria": [_criterion(r) for r in sorted_criteria(verdict.criteria)],
        "findings": [_finding(item) for item in sorted_findings(verdict)],
        "waivers": [_waiver(w) for w in _sorted_waivers(verdict.waivers)],
        "measurements": [_measurement(m) for m in _sorted_measurements(record)],
    }


def _number(value: float | None) -> float | None:
    # JSON has no NaN or infinity, so a non-finite value is written as null.
    if value is None or not math.isfinite(value):
        return None
    return value


def _criterion(result: CriterionResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "gate": result.gate,
        "metric": result.metric,
        "status": result.status.value,
        "blocking": result.blocking,
        "value": _number(result.value),
        "threshold": _number(result.threshold),
        "operator": result.operator,
        "unit": result.unit,
        "action": result.action.value,
        "reason": result.reason,
        "tools": sorted(result.tools),
        "findings": sorted(result.findings),
        "waived_by": result.waived_by,
    }


def _finding(item: EvaluatedFinding) -> dict[str, Any]:
    finding = item.finding
    return {
        "fingerprint": finding.fingerprint,
        "category": finding.category,
        "tool": finding.tool,
        "rule_id": finding.rule_id,
        "severity": item.severity,
        "tool_severity": finding.tool_severity,
        "tool_confidence": finding.tool_confidence,
        "score": _number(finding.score),
        "value": _number(finding.value),
        "path": finding.path,
        "line": finding.line,
        "message": finding.message,
        "waived": item.waived,
        "waiver_reason": item.waiver_reason,
    }


def _sorted_waivers(waivers: list[WaiverResult]) -> list[WaiverResult]:
    return sorted(
        waivers, key=lambda w: (w.kind, w.target, w.expires, w.owner, w.reason)
    )


def _waiver(waiver: WaiverResult) -> dict[str, Any]:
    return {
        "target": waiver.target,
        "kind": waiver.kind,
        "owner": waiver.owner,
        "reason": waiver.reason,
        "expires": waiver.expires,
        "state": waiver.state.value,
    }


def _sorted_measurements(record: RunRecord) -> list[Measurement]:
    return sorted(record.measurements, key=lambda m: (m.metric, m.tool, m.status.value))


def _detail(value: Any) -> Any:
    return _number(value) if isinstance(value, float) else value


def _measurement(measurement: Measurement) -> dict[str, Any]:
    return {
        "metric": measurement.metric,
        "status": measurement.status.value,
        "value": _number(measurement.value),
        "unit": measurement.unit,
        "tool": measurement.tool,
        "tool_version": measurement.tool_version,
        "inputs_digest": measurement.inputs_digest,
        "reason": measurement.reason,
        "details": {
            key: measurement.details[key] for key in sorted(measurement.details)
        },
    }

"""Evaluation: a pure function from policy, measurements and findings to a verdict.

Nothing here reads a file, the clock or the environment. The same arguments give
the same verdict, byte for byte once serialised, which is what makes replay work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from daw.models import Finding, Measurement, MeasurementStatus
from daw.policy.metrics import METRICS, MetricSpec
from daw.policy.model import Criterion, Policy, SeverityMapping, Waiver
from daw.policy.verdict import (
    CriterionResult,
    EvaluatedFinding,
    OverallStatus,
    Status,
    Verdict,
    WaiverResult,
    WaiverState,
)
from daw.stages import Stage

NOT_MEASURED = "not measured at this stage"


@dataclass(frozen=True)
class _Value:
    """A metric's value, or the status and reason why there is none."""

    status: MeasurementStatus
    value: float | None
    reason: str
    tools: tuple[str, ...]
    findings: tuple[str, ...] = ()


def evaluate(
    policy: Policy,
    measurements: Sequence[Measurement],
    findings: Sequence[Finding],
    *,
    stage: Stage,
    environment: str,
    at: dt.datetime,
) -> Verdict:
    """Return the verdict of ``policy`` on the measurements at ``stage`` and ``at``.

    ``at`` decides which waivers have expired; it must be timezone-aware.
    """
    today = at.astimezone(dt.UTC).date()
    active, expired = _split_waivers(policy.waivers, today)
    evaluated = _evaluate_findings(findings, policy.severity, active)
    counted = [item for item in evaluated if not item.waived]
    results = [
        _evaluate_criterion(cid, criterion, measurements, counted, stage, active)
        for cid, criterion in policy.criteria()
    ]
    used = {r.waived_by for r in results if r.waived_by}
    used |= {item.finding.fingerprint for item in evaluated if item.waived}
    return Verdict(
        status=_overall(results),
        stage=stage.value,
        environment=environment,
        policy_digest=policy.digest(),
        evaluated_at=at.astimezone(dt.UTC).isoformat(),
        criteria=results,
        findings=sorted(evaluated, key=lambda item: item.finding.sort_key()),
        waivers=_waiver_results(policy.waivers, expired, used),
    )


def _split_waivers(
    waivers: Sequence[Waiver], today: dt.date
) -> tuple[dict[str, Waiver], set[int]]:
    """Return active waivers keyed by target, and the indexes of expired ones.

    A waiver is active up to and including its expiry date (UTC).
    """
    active: dict[str, Waiver] = {}
    expired: set[int] = set()
    for index, waiver in enumerate(waivers):
        target = waiver.criterion or waiver.fingerprint or ""
        if waiver.expires < today:
            expired.add(index)
        else:
            active.setdefault(target, waiver)
    return active, expired


def _waiver_results(
    waivers: Sequence[Waiver], expired: set[int], used: set[str]
) -> list[WaiverResult]:
    results = []
    for index, waiver in enumerate(waivers):
        target = waiver.criterion or waiver.fingerprint or ""
        if index in expired:
            state = WaiverState.EXPIRED
        elif target in used:
            state = WaiverState.APPLIED
        else:
            state = WaiverState.UNUSED
        results.append(
            WaiverResult(
                target=target,
                kind="criterion" if waiver.criterion else "finding",
                owner=waiver.owner,
                reason=waiver.reason,
                expires=waiver.expires.isoformat(),
                state=state,
            )
        )
    return sorted(results, key=lambda r: (r.kind, r.target, r.expires, r.owner))


def normalise_severity(finding: Finding, mapping: SeverityMapping) -> str:
    """Return the finding's severity under the policy's mapping.

    Only SAST findings are remapped: by score when the tool gave one, else by
    bandit severity and confidence, else by SARIF level. Others keep theirs.
    """
    if finding.category != "sast":
        return finding.severity
    if finding.score is not None:
        for severity in ("critical", "high", "medium"):
            bound = mapping.scores.get(severity)  # type: ignore[call-overload]
            if bound is not None and finding.score >= bound:
                return severity
        return "low"
    if finding.tool == "bandit" and finding.tool_severity:
        return _bandit_severity(finding, mapping) or finding.severity
    level = (finding.tool_severity or "").lower()
    return mapping.sarif_levels.get(level, finding.severity)  # type: ignore[call-overload]


def _bandit_severity(finding: Finding, mapping: SeverityMapping) -> str | None:
    severity = (finding.tool_severity or "").upper()
    confidence = (finding.tool_confidence or "").upper()
    return mapping.bandit.get(f"{severity}/{confidence}") or mapping.bandit.get(
        f"{severity}/*"
    )


def _evaluate_findings(
    findings: Sequence[Finding], mapping: SeverityMapping, active: dict[str, Waiver]
) -> list[EvaluatedFinding]:
    evaluated = []
    for finding in findings:
        waiver = active.get(finding.fingerprint)
        evaluated.append(
            EvaluatedFinding(
                finding=finding,
                severity=normalise_severity(finding, mapping),
                waived=waiver is not None,
                waiver_reason=_describe_waiver(waiver) if waiver else None,
            )
        )
    return evaluated


def _describe_waiver(waiver: Waiver) -> str:
    return (
        f"waived by {waiver.owner} until {waiver.expires.isoformat()}: {waiver.reason}"
    )


def _metric_value(
    spec: MetricSpec,
    measurements: Sequence[Measurement],
    counted: Sequence[EvaluatedFinding],
) -> _Value:
    relevant = sorted(
        (m for m in measurements if m.metric == spec.source), key=lambda m: m.tool
    )
    tools = tuple(sorted({m.tool for m in relevant}))
    if not relevant:
        return _Value(MeasurementStatus.NOT_APPLICABLE, None, NOT_MEASURED, tools)

    errors = [m for m in relevant if m.status is MeasurementStatus.ERROR]
    if errors:
        reason = "; ".join(f"{m.tool}: {m.reason}" for m in errors)
        return _Value(MeasurementStatus.ERROR, None, reason, tools)

    successful = [m for m in relevant if m.status is MeasurementStatus.OK]
    if not successful:
        reason = "; ".join(f"{m.tool}: {m.reason}" for m in relevant)
        return _Value(MeasurementStatus.NOT_APPLICABLE, None, reason, tools)

    value, fingerprints = _computed(spec, successful[0], counted)
    return _Value(MeasurementStatus.OK, value, "", tools, fingerprints)


def _computed(
    spec: MetricSpec, first: Measurement, counted: Sequence[EvaluatedFinding]
) -> tuple[float | None, tuple[str, ...]]:
    """Return a measured metric's value and the fingerprints that explain it."""
    if spec.kind == "direct":
        category = spec.evidence
        matching = [item for item in counted if item.finding.category == category]
        fingerprints = tuple(sorted(item.finding.fingerprint for item in matching))
        return first.value, fingerprints if category else ()

    matching = [
        item
        for item in counted
        if item.finding.category == spec.source
        and (not spec.severities or item.severity in spec.severities)
    ]
    fingerprints = tuple(sorted(item.finding.fingerprint for item in matching))
    if spec.kind == "count":
        return float(len(matching)), fingerprints
    values = [item.finding.value or 0.0 for item in matching]
    return max(values, default=0.0), fingerprints


def _evaluate_criterion(
    criterion_id: str,
    criterion: Criterion,
    measurements: Sequence[Measurement],
    counted: Sequence[EvaluatedFinding],
    stage: Stage,
    active: dict[str, Waiver],
) -> CriterionResult:
    gate = criterion_id.split(".", 1)[0]
    base = {
        "id": criterion_id,
        "gate": gate,
        "metric": criterion.metric,
        "threshold": criterion.threshold,
        "operator": criterion.operator,
        "unit": criterion.unit,
        "action": criterion.action,
    }
    if not criterion.enabled:
        return CriterionResult(
            **base,
            status=Status.NOT_APPLICABLE,
            blocking=False,
            value=None,
            reason="disabled in the policy",
            tools=[],
            findings=[],
        )
    measured = _metric_value(METRICS[criterion.metric], measurements, counted)
    status, blocking, reason, waiver = _judge(
        criterion, measured, stage, active.get(criterion_id)
    )
    return CriterionResult(
        **base,
        status=status,
        blocking=blocking,
        value=measured.value,
        reason=reason,
        tools=list(measured.tools),
        findings=list(measured.findings),
        waived_by=criterion_id if waiver else None,
    )


def _judge(
    criterion: Criterion, measured: _Value, stage: Stage, waiver: Waiver | None
) -> tuple[Status, bool, str, Waiver | None]:
    """Return status, whether it blocks, the reason, and the waiver that applied."""
    would_block = criterion.action.blocks_at(stage)
    if measured.status is MeasurementStatus.NOT_APPLICABLE:
        return Status.NOT_APPLICABLE, False, measured.reason, None
    if measured.status is MeasurementStatus.ERROR:
        reason = f"measurement failed: {measured.reason}"
        if waiver is not None:
            return Status.ERROR, False, f"{reason}; {_describe_waiver(waiver)}", waiver
        return Status.ERROR, would_block, reason, None
    value = measured.value if measured.value is not None else 0.0
    measured_text, threshold = format_number(value), format_number(criterion.threshold)
    comparison = f"{measured_text} {criterion.operator} {threshold}"
    unit = f" {criterion.unit}" if criterion.unit else ""
    if criterion.passes(value):
        return Status.PASS, False, f"{comparison}{unit}", None
    failed = f"{measured_text}{unit}, expected {criterion.operator} {threshold}{unit}"
    if waiver is not None:
        return Status.WARN, False, f"{failed}; {_describe_waiver(waiver)}", waiver
    if would_block:
        return (
            Status.BLOCK,
            True,
            f"{failed}; blocks at {stage.value} ({criterion.action.value})",
            None,
        )
    later = criterion.action.blocking_stage
    suffix = f"; would block at {later.value}" if later else ""
    return Status.WARN, False, f"{failed}{suffix}", None


def _overall(results: Sequence[CriterionResult]) -> OverallStatus:
    if any(r.blocking for r in results):
        return OverallStatus.BLOCK
    if any(r.status in (Status.WARN, Status.ERROR) for r in results):
        return OverallStatus.WARN
    return OverallStatus.PASS


def format_number(value: float) -> str:
    """Format a metric value without a trailing ``.0`` and with at most two decimals."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")

"""Renderers of a run record (terminal, JSON, Markdown, SARIF, JUnit) and their helpers.

Every renderer is a pure function of a RunRecord: the same record gives the same
output, and none of them reads the clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from daw.policy.evaluation import format_number
from daw.policy.model import GATES
from daw.policy.verdict import CriterionResult, EvaluatedFinding, Verdict

SHORT_DIGEST = 12


def format_value(value: float | None, unit: str) -> str:
    """Format a measured value with its unit, or ``-`` when there is no value."""
    if value is None:
        return "-"
    return f"{format_number(value)} {unit}".rstrip()


def format_threshold(result: CriterionResult) -> str:
    """Format a criterion's comparison, such as ``>= 80 %``."""
    return f"{result.operator} {format_value(result.threshold, result.unit)}"


def printable(text: str) -> str:
    """Escape control characters, so a file name or message cannot break a line."""
    return "".join(
        char if char.isprintable() or char == " " else repr(char)[1:-1] for char in text
    )


def format_location(finding: EvaluatedFinding) -> str:
    """Format ``path:line``, the path alone, or ``-`` for a finding without a file."""
    path = printable(finding.finding.path) if finding.finding.path else None
    line = finding.finding.line
    if path is None:
        return "-"
    if line is None:
        return path
    return f"{path}:{line}"


def shorten(text: str | None, length: int = SHORT_DIGEST) -> str:
    """Return the first ``length`` characters of a digest or commit, or ``none``."""
    if not text:
        return "none"
    return text[:length]


def _gate_rank(gate: str) -> int:
    return GATES.index(gate) if gate in GATES else len(GATES)


def sorted_criteria(criteria: Iterable[CriterionResult]) -> list[CriterionResult]:
    """Return criteria in the policy's gate order, then by id."""
    return sorted(criteria, key=lambda r: (_gate_rank(r.gate), r.gate, r.id))


def criteria_by_gate(verdict: Verdict) -> dict[str, list[CriterionResult]]:
    """Group the verdict's criteria by gate, in gate order then criterion id."""
    groups: dict[str, list[CriterionResult]] = {}
    for result in sorted_criteria(verdict.criteria):
        groups.setdefault(result.gate, []).append(result)
    return groups


def sorted_findings(verdict: Verdict) -> list[EvaluatedFinding]:
    """Return the verdict's findings in ``Finding.sort_key`` order."""
    return sorted(verdict.findings, key=lambda item: item.finding.sort_key())


def findings_of(result: CriterionResult, verdict: Verdict) -> list[EvaluatedFinding]:
    """Return the findings counted in ``result``, in ``Finding.sort_key`` order.

    A fingerprint that the verdict does not list is skipped, since there is
    nothing to show for it.
    """
    wanted = set(result.findings)
    return [
        item for item in sorted_findings(verdict) if item.finding.fingerprint in wanted
    ]

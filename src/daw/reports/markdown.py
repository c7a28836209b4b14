"""The Markdown report: a pull-request comment with one table per gate."""

from __future__ import annotations

from daw.policy.verdict import CriterionResult, EvaluatedFinding, Verdict, WaiverResult
from daw.reports import (
    criteria_by_gate,
    findings_of,
    format_location,
    format_threshold,
    format_value,
    shorten,
    sorted_criteria,
)
from daw.run import RunRecord

MAX_FINDINGS = 50


def render_markdown(record: RunRecord) -> str:
    """Render ``record`` as a Markdown comment ending in a newline.

    Text from the record is escaped, so a ``|``, a newline or HTML in a message
    cannot break a table or inject markup.
    """
    verdict = record.verdict
    sections = [_heading(verdict)]
    for gate, results in criteria_by_gate(verdict).items():
        sections.append(_gate_table(gate, results))

    blocking = _blocking_rows(verdict)
    if blocking:
        sections.append(blocking)
    if verdict.waivers:
        sections.append(_waivers(verdict.waivers))

    sections.append(_footer(record))
    return "\n\n".join(sections) + "\n"


def escape_cell(text: str) -> str:
    """Escape ``text`` for a table cell: ``&``, ``<``, ``|``, ``\\`` and line breaks."""
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "<br>")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(escape_cell(cell) for cell in row) + " |")
    return "\n".join(lines)


def _heading(verdict: Verdict) -> str:
    return (
        f"## DAW: {verdict.status.value.upper()}\n\n"
        f"Stage `{verdict.stage}`, environment `{verdict.environment}`."
    )


def _gate_table(gate: str, results: list[CriterionResult]) -> str:
    rows = [
        [
            result.id,
            format_value(result.value, result.unit),
            format_threshold(result),
            result.status.value,
            result.reason,
        ]
        for result in results
    ]
    table = _table(["Criterion", "Value", "Threshold", "Status", "Reason"], rows)
    return f"### {gate}\n\n{table}"


def _blocking_pairs(verdict: Verdict) -> list[tuple[CriterionResult, EvaluatedFinding]]:
    return [
        (result, item)
        for result in sorted_criteria(verdict.criteria)
        if result.blocking
        for item in findings_of(result, verdict)
    ]


def _blocking_rows(verdict: Verdict) -> str | None:
    pairs = _blocking_pairs(verdict)
    if not pairs:
        return None
    rows = [
        [
            result.id,
            format_location(item),
            item.finding.rule_id,
            item.severity,
            item.finding.message,
        ]
        for result, item in pairs[:MAX_FINDINGS]
    ]
    header = ["Criterion", "Location", "Rule", "Severity", "Message"]
    text = f"### Blocking findings\n\n{_table(header, rows)}"
    hidden = len(pairs) - MAX_FINDINGS
    if hidden > 0:
        text += f"\n\n... and {hidden} more; the JSON and SARIF reports list them all."
    return text


def _waivers(waivers: list[WaiverResult]) -> str:
    ordered = sorted(waivers, key=lambda w: (w.kind, w.target, w.expires, w.owner))
    rows = [
        [w.target, w.kind, w.owner, w.expires, w.state.value, w.reason] for w in ordered
    ]
    header = ["Target", "Kind", "Owner", "Expires", "State", "Reason"]
    return f"### Waivers\n\n{_table(header, rows)}"


def _footer(record: RunRecord) -> str:
    digest = shorten(record.verdict.policy_digest)
    dirty = " with uncommitted changes" if record.dirty else ""
    return (
        f"<sub>Run `{record.run_id}`, policy `{digest}`,"
        f" commit `{shorten(record.commit)}`{dirty}</sub>"
    )

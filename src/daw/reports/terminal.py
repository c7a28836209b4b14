"""The terminal report: a table per gate, a summary, blocking findings, waivers."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from daw.policy.verdict import CriterionResult, Status, Verdict, WaiverState
from daw.reports import (
    criteria_by_gate,
    findings_of,
    format_location,
    format_threshold,
    format_value,
    printable,
    sorted_criteria,
)
from daw.run import RunRecord

MAX_FINDINGS = 20

STATUS_STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.BLOCK: "bold red",
    Status.ERROR: "magenta",
    Status.NOT_APPLICABLE: "dim",
}
OVERALL_STYLES = {"pass": "bold green", "warn": "bold yellow", "block": "bold red"}
COUNT_ORDER = (
    Status.BLOCK,
    Status.ERROR,
    Status.WARN,
    Status.PASS,
    Status.NOT_APPLICABLE,
)


def render_terminal(record: RunRecord, console: Console) -> None:
    """Print the report of ``record`` to ``console``.

    Every text from the record is printed as plain text, never as rich markup.
    ``record.created_at`` is the only wall-clock time shown, labelled "started".
    """
    verdict = record.verdict
    for gate, results in criteria_by_gate(verdict).items():
        console.print(_gate_table(gate, results))

    console.print(_summary(record))
    console.print(_counts(verdict))

    for result in sorted_criteria(verdict.criteria):
        if result.blocking:
            _print_blocking(console, result, verdict)

    _print_expired_waivers(console, verdict)
    _print_unused_waivers(console, verdict)


def _gate_table(gate: str, results: list[CriterionResult]) -> Table:
    table = Table(
        title=Text(gate, style="bold"), box=box.SIMPLE_HEAD, title_justify="left"
    )
    table.add_column("criterion", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("threshold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("reason")
    for result in results:
        table.add_row(
            Text(result.id),
            Text(format_value(result.value, result.unit)),
            Text(format_threshold(result)),
            Text(result.status.value, style=STATUS_STYLES[result.status]),
            Text(printable(result.reason)),
        )
    return table


def _summary(record: RunRecord) -> Text:
    verdict = record.verdict
    status = verdict.status.value
    text = Text()
    text.append(status.upper(), style=OVERALL_STYLES.get(status, "bold"))
    text.append(
        f" at stage {verdict.stage}, environment {verdict.environment}"
        f" (run {record.run_id}, started {record.created_at})"
    )
    return text


def _counts(verdict: Verdict) -> Text:
    counts = {status: 0 for status in COUNT_ORDER}
    for result in verdict.criteria:
        counts[result.status] += 1
    parts = [f"{counts[status]} {status.value}" for status in COUNT_ORDER]
    return Text("criteria: " + ", ".join(parts))


def _print_blocking(
    console: Console, result: CriterionResult, verdict: Verdict
) -> None:
    findings = findings_of(result, verdict)
    console.print()
    heading = Text()
    heading.append(result.id, style="bold")
    heading.append(f" blocks: {result.reason}")
    console.print(heading)

    for item in findings[:MAX_FINDINGS]:
        finding = item.finding
        console.print(
            Text(
                f"  {format_location(item)}  {finding.rule_id}  {item.severity}"
                f"  {printable(finding.message)}"
            )
        )
    hidden = len(findings) - MAX_FINDINGS
    if hidden > 0:
        console.print(Text(f"  ... and {hidden} more"))


def _print_expired_waivers(console: Console, verdict: Verdict) -> None:
    expired = [w for w in verdict.waivers if w.state is WaiverState.EXPIRED]
    if not expired:
        return
    console.print()
    for waiver in expired:
        notice = Text()
        notice.append("expired waiver", style="yellow")
        notice.append(
            f": {waiver.kind} {waiver.target} (owner {waiver.owner}, expired after"
            f" {waiver.expires}): {waiver.reason}. It no longer applies; renew its"
            " expiry date or remove it from the policy."
        )
        console.print(notice)


def _print_unused_waivers(console: Console, verdict: Verdict) -> None:
    unused = [w for w in verdict.waivers if w.state is WaiverState.UNUSED]
    for waiver in unused:
        notice = Text()
        notice.append("unused waiver", style="yellow")
        notice.append(
            f": {waiver.kind} {waiver.target} (owner {waiver.owner}) did not apply"
            " in this run; check its target, or remove it once it is not needed."
        )
        console.print(notice)

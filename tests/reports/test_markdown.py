"""Tests of the Markdown pull-request comment."""

from __future__ import annotations

import re

from report_records import make_finding, measured

from daw.reports.markdown import escape_cell, render_markdown
from daw.run import RunRecord
from daw.stages import Stage


def _section(text: str, title: str) -> str:
    """Return the lines of the ``### title`` section, without its heading."""
    part = text.split(f"### {title}\n\n", 1)[1]
    return part.split("\n\n", 1)[0]


def _cells(row: str) -> list[str]:
    """Split a table row at the pipes that are not escaped."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_markdown_heading(standard_record: RunRecord) -> None:
    text = render_markdown(standard_record)

    assert text.startswith(
        "## DAW: BLOCK\n\nStage `merge`, environment `development`.\n\n"
    )


def test_markdown_gate_table(standard_record: RunRecord) -> None:
    table = _section(render_markdown(standard_record), "performance")

    assert table.splitlines() == [
        "| Criterion | Value | Threshold | Status | Reason |",
        "|---|---|---|---|---|",
        "| performance.api_p95_ms | 620 ms | &lt; 500 ms | warn"
        " | 620 ms, expected &lt; 500 ms |",
        "| performance.bundle_size_increase | - | &lt; 10 % | n/a"
        " | not measured at this stage |",
        "| performance.memory_mb | - | &lt; 512 MB | n/a"
        " | not measured at this stage |",
    ]


def test_markdown_gates_in_order(standard_record: RunRecord) -> None:
    text = render_markdown(standard_record)
    headings = re.findall(r"^### (.+)$", text, re.M)

    assert headings == [
        "code_quality",
        "security",
        "performance",
        "uat",
        "migration",
        "Blocking findings",
        "Waivers",
    ]


def test_markdown_blocking_findings(standard_record: RunRecord) -> None:
    table = _section(render_markdown(standard_record), "Blocking findings")

    assert table.splitlines() == [
        "| Criterion | Location | Rule | Severity | Message |",
        "|---|---|---|---|---|",
        "| code_quality.lint_errors | src/app.py:1 | F401 | low"
        " | `os` imported but unused |",
        "| code_quality.lint_errors | src/app.py:7 | E711 | low"
        " | Comparison to `None` should be `cond is None` |",
        "| security.sast_critical | src/db.py:33"
        " | python.lang.security.audit.formatted-sql-query | critical"
        " | Detected possible formatted SQL query \\| use parameters |",
        "| security.sast_critical | src/run.py:12 | B602 | critical"
        " | subprocess call with shell=True identified, security issue. |",
    ]


def test_markdown_waivers(standard_record: RunRecord) -> None:
    rows = _section(render_markdown(standard_record), "Waivers").splitlines()

    assert rows[0] == "| Target | Kind | Owner | Expires | State | Reason |"
    assert _cells(rows[2]) == [
        "code_quality.coverage_total",
        "criterion",
        "carol",
        "2026-12-31",
        "unused",
        "legacy code \\| being split",
    ]
    assert _cells(rows[4])[4] == "expired"
    assert len(rows) == 5


def test_markdown_footer(standard_record: RunRecord) -> None:
    text = render_markdown(standard_record)
    digest = standard_record.verdict.policy_digest[:12]

    assert text.endswith(
        f"<sub>Run `20260301T115930-3f9c2a7b1d04`, policy `{digest}`,"
        " commit `4b825dc642cb`</sub>\n"
    )


def test_markdown_footer_dirty_without_commit(build_record) -> None:
    record = build_record([measured("lint", "ruff", 0)], commit=None, dirty=True)
    text = render_markdown(record)

    assert text.splitlines()[-1].endswith(
        "commit `none` with uncommitted changes</sub>"
    )


def test_markdown_pass_has_no_blocking_section(build_record) -> None:
    record = build_record([measured("lint", "ruff", 0)], stage=Stage.COMMIT)
    text = render_markdown(record)

    assert text.startswith("## DAW: PASS\n")
    assert "### Blocking findings" not in text
    assert "### Waivers" not in text


def test_markdown_escape_cell() -> None:
    assert escape_cell("a|b") == "a\\|b"
    assert escape_cell("one\ntwo\r\nthree") == "one<br>two<br>three"
    assert escape_cell("<script>&") == "&lt;script>&amp;"
    assert escape_cell("back\\") == "back\\\\"


def test_markdown_hostile_message_keeps_table(build_record) -> None:
    message = "a | b\nc <img src=x> `d`"
    finding = make_finding("lint", "ruff", "E1", "src/a.py", 2, message, "x")
    record = build_record([measured("lint", "ruff", 1)], [finding])
    table = _section(render_markdown(record), "Blocking findings")
    row = table.splitlines()[2]

    assert _cells(row) == [
        "code_quality.lint_errors",
        "src/a.py:2",
        "E1",
        "unknown",
        "a \\| b<br>c &lt;img src=x> `d`",
    ]
    assert len(table.splitlines()) == 3


def test_markdown_limits_findings(build_record) -> None:
    findings = [
        make_finding("lint", "ruff", "F401", f"src/m{i:02}.py", 1, "unused", f"m{i}")
        for i in range(60)
    ]
    record = build_record([measured("lint", "ruff", 60)], findings)
    text = render_markdown(record)
    rows = _section(text, "Blocking findings").splitlines()

    assert len(rows) == 52
    assert _cells(rows[-1])[1] == "src/m49.py:1"
    assert "... and 10 more; the JSON and SARIF reports list them all." in text


def test_markdown_same_bytes(standard_record: RunRecord) -> None:
    replayed = RunRecord.model_validate_json(standard_record.model_dump_json())

    assert render_markdown(replayed) == render_markdown(standard_record)

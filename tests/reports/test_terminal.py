"""Tests of the terminal report, rendered at a fixed width without colour."""

from __future__ import annotations

import io

from report_records import (
    SAST_EVAL,
    STANDARD_FINDINGS,
    make_finding,
    measured,
    standard_measurements,
    waiver_policy,
)
from rich.console import Console

from daw.reports.terminal import render_terminal
from daw.run import RunRecord
from daw.stages import Stage


def _lines(record: RunRecord) -> list[str]:
    console = Console(width=120, record=True, color_system=None, force_terminal=False)
    render_terminal(record, console)
    return [line.rstrip() for line in console.export_text().splitlines()]


def _after_tables(lines: list[str]) -> list[str]:
    start = next(
        i for i, line in enumerate(lines) if line.startswith(("BLOCK", "WARN", "PASS"))
    )
    return lines[start:]


def test_terminal_summary_and_blocking(standard_record: RunRecord) -> None:
    lines = _after_tables(_lines(standard_record))

    assert lines == [
        "BLOCK at stage merge, environment development"
        " (run 20260301T115930-3f9c2a7b1d04, started 2026-03-01T11:59:30+00:00)",
        "criteria: 3 block, 1 error, 2 warn, 3 pass, 10 n/a",
        "",
        "code_quality.coverage_new_code blocks: 72.5 %, expected >= 80 %;"
        " blocks at merge (block-merge)",
        "",
        "code_quality.lint_errors blocks: 2 errors, expected == 0 errors;"
        " blocks at merge (block-commit)",
        "  src/app.py:1  F401  low  `os` imported but unused",
        "  src/app.py:7  E711  low  Comparison to `None` should be `cond is None`",
        "",
        "code_quality.test_failures blocks: measurement failed: pytest:"
        " timed out after 600 s",
        "",
        "security.sast_critical blocks: 2 findings, expected == 0 findings;"
        " blocks at merge (block-merge)",
        "  src/db.py:33  python.lang.security.audit.formatted-sql-query  critical"
        "  Detected possible formatted SQL query | use",
        "parameters",
        "  src/run.py:12  B602  critical  subprocess call with shell=True"
        " identified, security issue.",
        "",
        "expired waiver: finding 7d9f043e131bcb0a (owner bob, expired after"
        " 2026-02-01): kept for the plugin API. It no longer",
        "applies; renew its expiry date or remove it from the policy.",
        "unused waiver: criterion code_quality.coverage_total (owner carol) did not"
        " apply in this run; check its target, or",
        "remove it once it is not needed.",
    ]


def test_terminal_gate_titles_in_order(standard_record: RunRecord) -> None:
    lines = _lines(standard_record)
    titles = [
        line
        for line in lines
        if line in ("code_quality", "security", "performance", "uat", "migration")
    ]

    assert titles == ["code_quality", "security", "performance", "uat", "migration"]


def test_terminal_table_rows(standard_record: RunRecord) -> None:
    lines = _lines(standard_record)

    assert (
        "  criterion                           value   threshold     status   reason"
        in lines
    )
    assert (
        "  code_quality.coverage_new_code     72.5 %   >= 80 %       block"
        "    72.5 %, expected >= 80 %; blocks at merge"
    ) in lines
    assert (
        "  code_quality.test_failures              -   == 0 tests    error"
        "    measurement failed: pytest: timed out after 600 s"
    ) in lines
    assert (
        "  security.sast_high        1 findings   == 0 findings     warn"
        "     1 findings, expected == 0 findings; would block at"
    ) in lines
    assert (
        "  performance.api_p95_ms             620 ms   < 500 ms    warn"
        "     620 ms, expected < 500 ms"
    ) in lines
    assert (
        "  uat.visual_regression       -   < 0.1 %     n/a"
        "      not measured at this stage"
    ) in lines


def test_terminal_hides_nonblocking_findings(
    standard_record: RunRecord,
) -> None:
    text = "\n".join(_lines(standard_record))

    assert SAST_EVAL.message not in text


def test_terminal_truncates_findings(build_record) -> None:
    findings = [
        make_finding(
            "lint", "ruff", "F401", f"src/m{i:02}.py", 1, "unused", f"import m{i}"
        )
        for i in range(25)
    ]
    record = build_record([measured("lint", "ruff", 25)], findings)
    lines = _after_tables(_lines(record))
    shown = [line for line in lines if line.startswith("  src/")]

    assert len(shown) == 20
    assert shown[0] == "  src/m00.py:1  F401  unknown  unused"
    assert shown[-1] == "  src/m19.py:1  F401  unknown  unused"
    assert "  ... and 5 more" in lines


def test_terminal_pass_has_no_blocking_section(build_record) -> None:
    record = build_record([measured("lint", "ruff", 0)], stage=Stage.COMMIT)
    lines = _after_tables(_lines(record))

    assert lines == [
        "PASS at stage commit, environment development"
        " (run 20260301T115930-3f9c2a7b1d04, started 2026-03-01T11:59:30+00:00)",
        "criteria: 0 block, 0 error, 0 warn, 1 pass, 18 n/a",
    ]


def test_terminal_prints_markup_literally(build_record) -> None:
    finding = make_finding(
        "lint", "ruff", "E999", "src/[x].py", None, "bad [bold]token[/bold]", "x"
    )
    record = build_record([measured("lint", "ruff", 1)], [finding])
    lines = _lines(record)

    assert "  src/[x].py  E999  unknown  bad [bold]token[/bold]" in lines


def test_terminal_status_colours(build_record) -> None:
    record = build_record(
        standard_measurements(), STANDARD_FINDINGS, policy_text=waiver_policy()
    )
    output = io.StringIO()
    console = Console(
        width=120, file=output, color_system="standard", force_terminal=True
    )
    render_terminal(record, console)
    text = output.getvalue()

    assert "\x1b[32mpass" in text
    assert "\x1b[33mwarn" in text
    assert "\x1b[1;31mblock" in text
    assert "\x1b[35merror" in text
    assert "\x1b[2mn/a" in text
    assert "\x1b[1;31mBLOCK" in text


def test_terminal_escapes_control_characters() -> None:
    from daw.reports import printable

    assert printable("new\nline.py") == "new\\nline.py"
    assert printable("tab\there") == "tab\\there"
    assert printable("café ok") == "café ok"

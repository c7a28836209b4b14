"""Tests of the JUnit XML report, read back with xml.etree and the project reader."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from report_records import measured

from daw.models import Measurement, MeasurementStatus
from daw.probes.reports import read_junit
from daw.reports.junit_out import render_junit
from daw.run import RunRecord


def _root(record: RunRecord) -> ET.Element:
    return ET.fromstring(render_junit(record))  # nosec B314 - our own output


def _case(root: ET.Element, criterion_id: str) -> ET.Element:
    for case in root.iter("testcase"):
        if case.get("name") == criterion_id:
            return case
    raise AssertionError(f"no testcase {criterion_id}")


def test_junit_declaration(standard_record: RunRecord) -> None:
    text = render_junit(standard_record)

    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    assert text.endswith("</testsuites>\n")


def test_junit_suites_per_gate(standard_record: RunRecord) -> None:
    root = _root(standard_record)
    names = [suite.get("name") for suite in root.findall("testsuite")]

    assert names == ["code_quality", "security", "performance", "uat", "migration"]


def test_junit_total_counts(standard_record: RunRecord) -> None:
    root = _root(standard_record)

    assert root.get("tests") == "19"
    assert root.get("failures") == "3"
    assert root.get("errors") == "1"
    assert root.get("skipped") == "10"


def test_junit_suite_counts_match_cases(standard_record: RunRecord) -> None:
    for suite in _root(standard_record).findall("testsuite"):
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases))
        assert suite.get("failures") == str(
            sum(c.find("failure") is not None for c in cases)
        )
        assert suite.get("errors") == str(
            sum(c.find("error") is not None for c in cases)
        )
        assert suite.get("skipped") == str(
            sum(c.find("skipped") is not None for c in cases)
        )


def test_junit_suite_counts_security(standard_record: RunRecord) -> None:
    suite = _root(standard_record).find("testsuite[@name='security']")

    assert suite is not None
    assert suite.get("tests") == "5"
    assert suite.get("failures") == "1"
    assert suite.get("errors") == "0"
    assert suite.get("skipped") == "2"


def test_junit_case_names(standard_record: RunRecord) -> None:
    case = _case(_root(standard_record), "security.sast_critical")

    assert case.get("classname") == "daw.security"
    assert case.get("name") == "security.sast_critical"


def test_junit_block_is_failure(standard_record: RunRecord) -> None:
    case = _case(_root(standard_record), "code_quality.lint_errors")
    failure = case.find("failure")
    result = standard_record.verdict.criterion("code_quality.lint_errors")

    assert failure is not None
    assert failure.get("message") == result.reason
    assert failure.text == (
        "value 2 errors, threshold == 0 errors, action block-commit\n"
        "findings: " + ", ".join(result.findings)
    )


def test_junit_error_is_error(standard_record: RunRecord) -> None:
    case = _case(_root(standard_record), "code_quality.test_failures")
    error = case.find("error")

    assert error is not None
    assert error.get("message") == "measurement failed: pytest: timed out after 600 s"
    assert case.find("failure") is None


def test_junit_na_is_skipped(standard_record: RunRecord) -> None:
    case = _case(_root(standard_record), "uat.p0_journeys")
    skipped = case.find("skipped")

    assert skipped is not None
    assert skipped.get("message") == "not measured at this stage"


def test_junit_warn_passes_with_output(standard_record: RunRecord) -> None:
    case = _case(_root(standard_record), "security.sast_high")
    output = case.find("system-out")

    assert list(child.tag for child in case) == ["system-out"]
    assert output is not None
    assert output.text == (
        "warning: 1 findings, expected == 0 findings; would block at release"
    )


def test_junit_pass_is_empty(standard_record: RunRecord) -> None:
    case = _case(_root(standard_record), "code_quality.coverage_total")

    assert list(case) == []


def test_junit_properties(standard_record: RunRecord) -> None:
    suite = _root(standard_record).find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}

    assert properties["run_id"] == standard_record.run_id
    assert properties["stage"] == "merge"
    assert properties["policy_digest"] == standard_record.verdict.policy_digest


def test_junit_control_characters_parse(build_record) -> None:
    broken = Measurement(
        metric="test",
        status=MeasurementStatus.ERROR,
        tool="pytest",
        reason="crashed: \x1b[31mred\x00 \x07bell",
    )
    record = build_record([broken, measured("lint", "ruff", 0)])
    case = _case(_root(record), "code_quality.test_failures")
    error = case.find("error")

    assert error is not None
    assert (
        error.get("message")
        == "measurement failed: pytest: crashed: \ufffd[31mred\ufffd \ufffdbell"
    )


def test_junit_read_by_project_reader(
    standard_record: RunRecord, tmp_path: Path
) -> None:
    path = tmp_path / "daw-junit.xml"
    path.write_text(render_junit(standard_record), encoding="utf-8")
    cases = {case.name: case for case in read_junit(path)}

    assert len(cases) == 19
    assert cases["code_quality.lint_errors"].outcome == "failed"
    assert cases["code_quality.test_failures"].outcome == "error"
    assert cases["uat.p0_journeys"].outcome == "skipped"
    assert cases["security.sast_high"].outcome == "passed"
    assert cases["code_quality.coverage_total"].classname == "daw.code_quality"


def test_junit_same_bytes(standard_record: RunRecord) -> None:
    replayed = RunRecord.model_validate_json(standard_record.model_dump_json())

    assert render_junit(replayed) == render_junit(standard_record)

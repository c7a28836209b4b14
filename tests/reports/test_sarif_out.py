"""Tests of the SARIF 2.1.0 report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_records import (
    LINT_UNUSED,
    SAST_IMPORTED,
    SAST_SHELL,
    SECRET,
    STANDARD_FINDINGS,
    make_finding,
    measured,
)

from daw.reports.sarif_out import FINGERPRINT_KEY, level, render_sarif
from daw.run import RunRecord

LEVELS = {"error", "warning", "note", "none"}


def _sarif(record: RunRecord) -> dict:
    return json.loads(render_sarif(record))


def _runs(record: RunRecord) -> dict[str, dict]:
    return {run["tool"]["driver"]["name"]: run for run in _sarif(record)["runs"]}


def _result(record: RunRecord, fingerprint: str) -> dict:
    for run in _sarif(record)["runs"]:
        for result in run["results"]:
            if result["partialFingerprints"][FINGERPRINT_KEY] == fingerprint:
                return result
    raise AssertionError(f"no result with fingerprint {fingerprint}")


def test_sarif_top_level(standard_record: RunRecord) -> None:
    document = _sarif(standard_record)

    assert document["version"] == "2.1.0"
    assert document["$schema"].endswith("sarif-schema-2.1.0.json")
    assert isinstance(document["runs"], list)


def test_sarif_required_keys(standard_record: RunRecord) -> None:
    for run in _sarif(standard_record)["runs"]:
        driver = run["tool"]["driver"]
        rule_ids = [rule["id"] for rule in driver["rules"]]
        assert isinstance(driver["name"], str)
        assert run["invocations"][0]["executionSuccessful"] in (True, False)
        for result in run["results"]:
            assert result["level"] in LEVELS
            assert result["message"]["text"]
            assert rule_ids[result["ruleIndex"]] == result["ruleId"]


def test_sarif_one_run_per_tool(standard_record: RunRecord) -> None:
    names = [run["tool"]["driver"]["name"] for run in _sarif(standard_record)["runs"]]

    assert names == ["bandit", "detect-secrets", "mypy", "pytest", "ruff", "semgrep"]


def test_sarif_every_finding_once(standard_record: RunRecord) -> None:
    fingerprints = [
        result["partialFingerprints"][FINGERPRINT_KEY]
        for run in _sarif(standard_record)["runs"]
        for result in run["results"]
    ]

    assert sorted(fingerprints) == sorted(f.fingerprint for f in STANDARD_FINDINGS)


def test_sarif_driver_versions(standard_record: RunRecord) -> None:
    runs = _runs(standard_record)

    assert runs["bandit"]["tool"]["driver"]["version"] == "1.9.2"
    assert runs["ruff"]["tool"]["driver"]["version"] == "0.8.1"
    assert "version" not in runs["semgrep"]["tool"]["driver"]


def test_sarif_rules_sorted(standard_record: RunRecord) -> None:
    runs = _runs(standard_record)

    assert runs["bandit"]["tool"]["driver"]["rules"] == [{"id": "B307"}, {"id": "B602"}]
    assert runs["ruff"]["tool"]["driver"]["rules"] == [{"id": "E711"}, {"id": "F401"}]


def test_sarif_result_shape(standard_record: RunRecord) -> None:
    result = _result(standard_record, SAST_SHELL.fingerprint)

    assert result == {
        "ruleId": "B602",
        "ruleIndex": 1,
        "level": "error",
        "message": {"text": SAST_SHELL.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "src/run.py", "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": 12},
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: SAST_SHELL.fingerprint},
    }


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", "error"),
        ("high", "error"),
        ("medium", "warning"),
        ("low", "note"),
        ("unknown", "note"),
    ],
)
def test_sarif_level(severity: str, expected: str) -> None:
    assert level(severity) == expected


def test_sarif_levels_use_evaluated_severity(standard_record: RunRecord) -> None:
    lint = _result(standard_record, LINT_UNUSED.fingerprint)
    imported = _result(standard_record, SAST_IMPORTED.fingerprint)

    assert lint["level"] == "note"
    assert imported["level"] == "error"


def test_sarif_medium_is_warning(build_record) -> None:
    finding = make_finding(
        "sast",
        "bandit",
        "B108",
        "src/tmp.py",
        4,
        "Probable insecure usage of temp",
        '"/tmp/x"',
        tool_severity="MEDIUM",
        tool_confidence="MEDIUM",
    )
    record = build_record([measured("sast", "bandit", 1)], [finding])

    assert _result(record, finding.fingerprint)["level"] == "warning"


def test_sarif_security_severity(standard_record: RunRecord) -> None:
    result = _result(standard_record, SAST_IMPORTED.fingerprint)
    rules = _runs(standard_record)["semgrep"]["tool"]["driver"]["rules"]

    assert result["properties"] == {"security-severity": "9.8"}
    assert rules[0]["properties"] == {"security-severity": "9.8"}
    assert "properties" not in _result(standard_record, SAST_SHELL.fingerprint)


def test_sarif_waived_finding_suppressed(standard_record: RunRecord) -> None:
    result = _result(standard_record, SECRET.fingerprint)

    assert result["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "waived by alice until 2026-06-30: test key, rotated",
        }
    ]
    assert "suppressions" not in _result(standard_record, LINT_UNUSED.fingerprint)


def test_sarif_failed_tool_invocation(standard_record: RunRecord) -> None:
    runs = _runs(standard_record)

    assert runs["pytest"]["results"] == []
    assert runs["pytest"]["invocations"] == [
        {
            "executionSuccessful": False,
            "toolExecutionNotifications": [
                {"level": "error", "message": {"text": "test: timed out after 600 s"}}
            ],
        }
    ]
    assert runs["mypy"]["invocations"] == [{"executionSuccessful": True}]


def test_sarif_locations_optional(build_record) -> None:
    no_line = make_finding(
        "sca", "osv", "GHSA-1", "requirements.txt", None, "vuln", "a"
    )
    no_path = make_finding("test", "pytest", "failed", None, None, "test_x failed", "b")
    spaced = make_finding("lint", "ruff", "F401", "src/my file.py", 3, "unused", "c")
    record = build_record([measured("lint", "ruff", 1)], [no_line, no_path, spaced])

    assert _result(record, no_line.fingerprint)["locations"] == [
        {
            "physicalLocation": {
                "artifactLocation": {
                    "uri": "requirements.txt",
                    "uriBaseId": "%SRCROOT%",
                }
            }
        }
    ]
    assert "locations" not in _result(record, no_path.fingerprint)
    spaced_location = _result(record, spaced.fingerprint)["locations"][0]
    uri = spaced_location["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "src/my%20file.py"


def test_sarif_same_bytes(standard_record: RunRecord) -> None:
    replayed = RunRecord.model_validate_json(standard_record.model_dump_json())

    assert render_sarif(replayed) == render_sarif(standard_record)


def test_sarif_read_back(standard_record: RunRecord, tmp_path: Path) -> None:
    from daw.probes import sarif

    # The reader rejects runs whose tool failed, so the round trip uses the
    # successful measurements only.
    measured = [m for m in standard_record.measurements if m.status.value != "error"]
    record = standard_record.model_copy(update={"measurements": measured})
    path = tmp_path / "daw.sarif"
    path.write_text(render_sarif(record), encoding="utf-8")
    log = sarif.read_sarif(path, tmp_path, lambda _path, _line: None)
    findings = log.findings
    waived = sum(1 for item in record.verdict.findings if item.waived)
    by_rule = {(f.tool, f.rule_id, f.path, f.line) for f in findings}

    assert ("bandit", "B602", "src/run.py", 12) in by_rule
    assert ("semgrep", SAST_IMPORTED.rule_id, "src/db.py", 33) in by_rule
    assert waived == 1
    assert log.suppressed == waived
    assert len(findings) == len(STANDARD_FINDINGS) - waived

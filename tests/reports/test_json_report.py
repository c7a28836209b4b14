"""Tests of the JSON report: stable bytes, documented content and the JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_records import (
    CREATED_AT,
    LINT_NONE,
    LINT_UNUSED,
    SAST_SHELL,
    SECRET,
    STANDARD_FINDINGS,
    measured,
    standard_measurements,
    waiver_policy,
)

from daw.models import Measurement
from daw.reports.json_report import render_json
from daw.run import ProbeSummary, RunRecord

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schemas" / "report.schema.json"
DOC = ROOT / "docs" / "json-report.md"


def test_json_same_record_same_bytes(standard_record: RunRecord) -> None:
    assert render_json(standard_record) == render_json(standard_record)


def test_json_replayed_record_same_bytes(standard_record: RunRecord) -> None:
    replayed = RunRecord.model_validate_json(standard_record.model_dump_json())

    assert render_json(replayed) == render_json(standard_record)


def test_json_ignores_start_time_and_durations(standard_record: RunRecord) -> None:
    other = standard_record.model_copy(
        update={
            "created_at": "2030-01-01T00:00:00+00:00",
            "probes": [ProbeSummary(probe="ruff", duration_s=1.25, cached=False)],
        }
    )

    assert render_json(other) == render_json(standard_record)


def test_json_has_no_wall_clock_fields(standard_record: RunRecord) -> None:
    text = render_json(standard_record)

    assert CREATED_AT not in text
    assert "created_at" not in text
    assert "duration" not in text


def test_json_input_order_irrelevant(build_record) -> None:
    forward = build_record(
        standard_measurements(), STANDARD_FINDINGS, policy_text=waiver_policy()
    )
    backward = build_record(
        list(reversed(standard_measurements())),
        tuple(reversed(STANDARD_FINDINGS)),
        policy_text=waiver_policy(),
    )

    assert render_json(backward) == render_json(forward)


def test_json_layout_sorted_indented(standard_record: RunRecord) -> None:
    text = render_json(standard_record)
    canonical = json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"

    assert text == canonical
    assert text.endswith("}\n")
    assert text.startswith('{\n  "all_files": false,\n')


def test_json_top_level(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))

    assert data["schema_version"] == 1
    assert data["run_id"] == standard_record.run_id
    assert data["status"] == "block"
    assert data["stage"] == "merge"
    assert data["environment"] == "development"
    assert data["policy_digest"] == standard_record.verdict.policy_digest
    assert data["commit"] == standard_record.commit
    assert data["base"] == "main"
    assert data["base_commit"] == standard_record.base_commit
    assert data["evaluated_at"] == "2026-03-01T12:00:00+00:00"
    assert data["tool_versions"] == standard_record.tool_versions


def test_json_criteria_order(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))
    ids = [c["id"] for c in data["criteria"]]

    assert ids[:6] == [
        "code_quality.coverage_new_code",
        "code_quality.coverage_total",
        "code_quality.lint_errors",
        "code_quality.test_failures",
        "code_quality.type_errors",
        "code_quality.typescript_strict",
    ]
    assert ids[6] == "security.dependency_age"
    assert ids[-1] == "migration.lock_risk"
    assert len(ids) == 19


def test_json_criterion_fields(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))
    lint = next(c for c in data["criteria"] if c["id"] == "code_quality.lint_errors")

    assert lint == {
        "id": "code_quality.lint_errors",
        "gate": "code_quality",
        "metric": "lint_errors",
        "status": "block",
        "blocking": True,
        "value": 2.0,
        "threshold": 0.0,
        "operator": "==",
        "unit": "errors",
        "action": "block-commit",
        "reason": "2 errors, expected == 0 errors; blocks at merge (block-commit)",
        "tools": ["ruff"],
        "findings": sorted([LINT_UNUSED.fingerprint, LINT_NONE.fingerprint]),
        "waived_by": None,
    }


def test_json_error_criterion(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))
    tests = next(c for c in data["criteria"] if c["id"] == "code_quality.test_failures")

    assert tests["status"] == "error"
    assert tests["blocking"] is True
    assert tests["value"] is None
    assert tests["reason"] == "measurement failed: pytest: timed out after 600 s"


def test_json_findings_evaluated_severity(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))
    shell = next(f for f in data["findings"] if f["rule_id"] == "B602")

    assert shell == {
        "fingerprint": SAST_SHELL.fingerprint,
        "category": "sast",
        "tool": "bandit",
        "rule_id": "B602",
        "severity": "critical",
        "tool_severity": "HIGH",
        "tool_confidence": "HIGH",
        "score": None,
        "value": None,
        "path": "src/run.py",
        "line": 12,
        "message": SAST_SHELL.message,
        "waived": False,
        "waiver_reason": None,
    }


def test_json_waived_finding(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))
    secret = next(f for f in data["findings"] if f["category"] == "secret")

    assert secret["fingerprint"] == SECRET.fingerprint
    assert secret["waived"] is True
    assert secret["waiver_reason"] == (
        "waived by alice until 2026-06-30: test key, rotated"
    )


def test_json_findings_order(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))
    keys = [(f["category"], f["path"], f["line"]) for f in data["findings"]]

    assert keys == [
        ("lint", "src/app.py", 1),
        ("lint", "src/app.py", 7),
        ("sast", "src/db.py", 33),
        ("sast", "src/run.py", 12),
        ("sast", "src/run.py", 20),
        ("secret", "config/settings.py", 3),
    ]


def test_json_waivers(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))

    assert data["waivers"] == [
        {
            "target": "code_quality.coverage_total",
            "kind": "criterion",
            "owner": "carol",
            "reason": "legacy code | being split",
            "expires": "2026-12-31",
            "state": "unused",
        },
        {
            "target": SECRET.fingerprint,
            "kind": "finding",
            "owner": "alice",
            "reason": "test key, rotated",
            "expires": "2026-06-30",
            "state": "applied",
        },
        {
            "target": LINT_UNUSED.fingerprint,
            "kind": "finding",
            "owner": "bob",
            "reason": "kept for the plugin API",
            "expires": "2026-02-01",
            "state": "expired",
        },
    ]


def test_json_measurements(standard_record: RunRecord) -> None:
    data = json.loads(render_json(standard_record))
    keys = [(m["metric"], m["tool"]) for m in data["measurements"]]
    test = next(m for m in data["measurements"] if m["metric"] == "test")

    assert keys == sorted(keys)
    assert len(keys) == len(standard_record.measurements)
    assert test == {
        "metric": "test",
        "status": "error",
        "value": None,
        "unit": "",
        "tool": "pytest",
        "tool_version": "8.3.3",
        "inputs_digest": "",
        "reason": "timed out after 600 s",
        "details": {},
    }


def test_json_nan_becomes_null(build_record) -> None:
    nan = Measurement(metric="coverage_total", value=float("nan"), unit="%", tool="x")
    record = build_record([nan])
    text = render_json(record)
    data = json.loads(text)
    coverage = next(m for m in data["measurements"] if m["metric"] == "coverage_total")

    assert "NaN" not in text
    assert coverage["value"] is None


def test_json_measurement_details(build_record) -> None:
    measured = Measurement(
        metric="sca",
        value=0,
        tool="osv",
        details={"ratio": 0.5, "advisory_digest": "ab12", "complete": True},
    )
    data = json.loads(render_json(build_record([measured])))
    details = next(m for m in data["measurements"] if m["tool"] == "osv")["details"]

    assert list(details) == ["advisory_digest", "complete", "ratio"]
    assert details["ratio"] == 0.5
    assert details["complete"] is True
    assert details["advisory_digest"] == "ab12"


def test_json_matches_schema(standard_record: RunRecord, build_record) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    minimal = build_record([measured("lint", "ruff", 0)], commit=None)

    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(validator.iter_errors(json.loads(render_json(standard_record)))) == []
    assert list(validator.iter_errors(json.loads(render_json(minimal)))) == []


def test_json_schema_rejects_unknown_key(standard_record: RunRecord) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    data = json.loads(render_json(standard_record))
    data["criteria"][0]["surprise"] = 1

    assert not jsonschema.Draft202012Validator(schema).is_valid(data)


def _schema_keys(schema: dict) -> set[str]:
    keys = set(schema["properties"])
    for definition in schema["$defs"].values():
        keys |= set(definition.get("properties", {}))
    return keys


def test_json_doc_lists_every_key() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOC.read_text("utf-8"), re.M))

    assert documented == _schema_keys(schema)

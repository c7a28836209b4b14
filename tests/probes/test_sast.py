"""Tests of the bandit and SARIF import probes, with real bandit runs on git repos."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from daw.git import tracked_files
from daw.models import MeasurementStatus, ProbeResult
from daw.probes.base import ProbeContext, ProbeSettings
from daw.probes.sarif import SARIF_VERSION, level_severity, score_severity
from daw.probes.sast import BanditProbe, SarifImportProbe, bandit_severity
from daw.stages import Stage

SHELL = """\
import subprocess


def run(command):
    subprocess.call(command, shell=True)
    return eval(command)


def scratch():
    return open("/tmp/scratch.txt", "w")
"""

SYNTAX_ERROR = "def broken(:\n    pass\n"

# Built from pieces so that this file itself contains no literal secret.
PASSWORD = "Tr0ub4dor" + "-and-3-horses"


def make_ctx(repo, python: str, files=None, **settings) -> ProbeContext:
    listed = files if files is not None else tracked_files(repo.root)
    return ProbeContext(
        repo_root=repo.root,
        scan_root=repo.root,
        stage=Stage.MERGE,
        files=tuple(sorted(listed)),
        python=python,
        settings=ProbeSettings(**settings),
    )


def by_rule(result: ProbeResult) -> dict:
    return {finding.rule_id: finding for finding in result.findings}


def bandit_sarif(repo, python: str, out: Path, *targets: str) -> dict:
    """Write bandit's own SARIF output for ``targets`` to ``out`` and return it."""
    subprocess.run(
        [python, "-m", "bandit", "-f", "sarif", "-q", "-o", str(out), *targets],
        cwd=repo.root,
        capture_output=True,
        check=False,
    )
    return json.loads(out.read_text(encoding="utf-8"))


def sarif_result(path: Path, python: str, repo) -> ProbeResult:
    ctx = make_ctx(repo, python, files=[], sarif_files=(path,))
    return SarifImportProbe().run(ctx)


# bandit


@pytest.mark.parametrize(
    ("rule", "line", "tool_severity", "tool_confidence", "severity"),
    [
        ("B602", 5, "HIGH", "HIGH", "critical"),
        ("B307", 6, "MEDIUM", "HIGH", "high"),
        ("B108", 10, "MEDIUM", "MEDIUM", "medium"),
        ("B404", 1, "LOW", "HIGH", "low"),
    ],
)
def test_bandit_finding_fields(
    make_repo, python, rule, line, tool_severity, tool_confidence, severity
):
    repo = make_repo({"pkg/shell.py": SHELL})

    result = BanditProbe().run(make_ctx(repo, python))

    finding = by_rule(result)[rule]
    assert finding.category == "sast"
    assert finding.tool == "bandit"
    assert finding.path == "pkg/shell.py"
    assert finding.line == line
    assert finding.tool_severity == tool_severity
    assert finding.tool_confidence == tool_confidence
    assert finding.severity == severity


def test_bandit_measurement_counts(make_repo, python):
    repo = make_repo({"pkg/shell.py": SHELL, "README.md": "# demo\n"})

    result = BanditProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.metric == "sast"
    assert measurement.value == 4
    assert measurement.tool_version.startswith("1.")
    assert measurement.details["files"] == 1
    assert measurement.inputs_digest


def test_bandit_syntax_error_visible(make_repo, python):
    repo = make_repo({"pkg/shell.py": SHELL, "pkg/broken.py": SYNTAX_ERROR})

    result = BanditProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.details["files_not_parsed"] == 1
    assert "pkg/broken.py" in measurement.reason
    assert measurement.value == 4


def test_bandit_pyproject_config(make_repo, python):
    pyproject = '[project]\nname = "demo"\n\n[tool.bandit]\nskips = ["B404"]\n'
    repo = make_repo({"pkg/shell.py": SHELL, "pyproject.toml": pyproject})

    result = BanditProbe().run(make_ctx(repo, python))

    assert "B404" not in by_rule(result)
    assert "B602" in by_rule(result)


def test_bandit_pyproject_without_table(make_repo, python):
    repo = make_repo(
        {"pkg/shell.py": SHELL, "pyproject.toml": '[project]\nname = "d"\n'}
    )

    result = BanditProbe().run(make_ctx(repo, python))

    assert "B404" in by_rule(result)


def test_bandit_ini_config(make_repo, python):
    repo = make_repo({"pkg/shell.py": SHELL, ".bandit": "[bandit]\nskips = B602\n"})

    result = BanditProbe().run(make_ctx(repo, python))

    assert "B602" not in by_rule(result)
    assert "B307" in by_rule(result)


def test_bandit_ini_output_overridden(make_repo, python):
    ini = "[bandit]\noutput = bandit-report.txt\nformat = txt\n"
    repo = make_repo({"pkg/shell.py": SHELL, ".bandit": ini})

    result = BanditProbe().run(make_ctx(repo, python))

    assert result.measurements[0].status is MeasurementStatus.OK
    assert "B602" in by_rule(result)
    assert not (repo.root / "bandit-report.txt").exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [("pyproject.toml", "[tool.bandit\n"), (".bandit", "skips = B602\n")],
)
def test_bandit_invalid_config_is_error(make_repo, python, name, text):
    repo = make_repo({"pkg/shell.py": SHELL, name: text})

    result = BanditProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert name in measurement.reason


def test_bandit_fingerprint_survives_move(make_repo, python):
    repo = make_repo({"pkg/shell.py": SHELL})
    before = by_rule(BanditProbe().run(make_ctx(repo, python)))["B602"]
    moved = SHELL.replace("def run(command):", "X = 1\n\n\ndef run(command):")
    repo.write("pkg/shell.py", moved)
    repo.commit("move")

    after = by_rule(BanditProbe().run(make_ctx(repo, python)))["B602"]

    assert after.line == before.line + 3
    assert after.fingerprint == before.fingerprint


def test_bandit_password_not_stored(make_repo, python):
    repo = make_repo({"settings.py": f'password = "{PASSWORD}"\n'})

    result = BanditProbe().run(make_ctx(repo, python))

    finding = by_rule(result)["B105"]
    assert finding.message == "Possible hardcoded password: '***'"
    assert PASSWORD not in result.model_dump_json()


def test_bandit_tool_missing_is_error(make_repo, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})

    result = BanditProbe().run(make_ctx(repo, str(tmp_path / "no-such-python")))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert "no-such-python" in measurement.reason


def test_bandit_no_python_not_applicable(make_repo, python):
    repo = make_repo({"README.md": "# demo\n"})

    result = BanditProbe().run(make_ctx(repo, python))

    assert result.measurements[0].status is MeasurementStatus.NOT_APPLICABLE


def test_bandit_no_python_in_scope_is_zero(make_repo, python):
    repo = make_repo({"pkg/shell.py": SHELL, "README.md": "# demo\n"})

    result = BanditProbe().run(make_ctx(repo, python, files=["README.md"]))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 0


def test_bandit_odd_files_do_not_crash(make_repo, python):
    repo = make_repo({"pkg/shell.py": SHELL})
    repo.write("pkg/blob.py", b"\x00\xff\xfe\x89PNG\x00\x00")
    repo.write("pkg/latin1.py", "name = 'caf\xe9'\n".encode("latin-1"))
    with open(repo.root / "pkg/huge.py", "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    os.symlink("loop_b.py", repo.root / "pkg/loop_a.py")
    os.symlink("loop_a.py", repo.root / "pkg/loop_b.py")
    names = ["blob.py", "huge.py", "latin1.py", "loop_a.py", "loop_b.py", "shell.py"]

    started = time.monotonic()
    result = BanditProbe().run(make_ctx(repo, python, [f"pkg/{n}" for n in names]))
    elapsed = time.monotonic() - started

    measurement = result.measurements[0]
    assert elapsed < 30
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 4
    assert measurement.details["skipped_too_large"] == 1
    assert measurement.details["skipped_not_regular"] == 2
    assert measurement.details["files_not_parsed"] >= 1
    assert "pkg/huge.py" in measurement.reason
    assert "pkg/blob.py" in measurement.reason


@pytest.mark.parametrize(
    ("severity", "confidence", "expected"),
    [
        ("HIGH", "HIGH", "critical"),
        ("HIGH", "LOW", "high"),
        ("MEDIUM", "HIGH", "high"),
        ("MEDIUM", "LOW", "medium"),
        ("LOW", "HIGH", "low"),
        ("UNDEFINED", "HIGH", "unknown"),
    ],
)
def test_bandit_severity_mapping(severity, confidence, expected):
    assert bandit_severity(severity, confidence) == expected


# SARIF import from bandit's real SARIF output


def test_sarif_bandit_findings(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "bandit.sarif"
    bandit_sarif(repo, python, out, "pkg/shell.py")

    result = sarif_result(out, python, repo)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 4
    assert measurement.tool_version.startswith("Bandit 1.")
    shell = by_rule(result)["B602"]
    assert shell.tool == "Bandit"
    assert shell.path == "pkg/shell.py"
    assert shell.line == 5
    assert shell.tool_severity == "error"
    assert shell.severity == "high"
    assert shell.score is None
    assert by_rule(result)["B307"].tool_severity == "warning"
    assert by_rule(result)["B404"].severity == "low"


def test_sarif_file_uri_made_relative(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "bandit.sarif"
    document = bandit_sarif(repo, python, out, str(repo.root / "pkg/shell.py"))
    uris = {
        location["physicalLocation"]["artifactLocation"]["uri"]
        for result in document["runs"][0]["results"]
        for location in result["locations"]
    }

    result = sarif_result(out, python, repo)

    assert all(uri.startswith("file://") for uri in uris)
    assert {f.path for f in result.findings} == {"pkg/shell.py"}


def test_sarif_uri_base_id_resolved(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "bandit.sarif"
    document = bandit_sarif(repo, python, out, "pkg/shell.py")
    run = document["runs"][0]
    run["originalUriBaseIds"] = {"PKG": {"uri": "pkg/", "uriBaseId": "ROOT"}}
    run["originalUriBaseIds"]["ROOT"] = {"uri": repo.root.as_uri() + "/"}
    for result in run["results"]:
        artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
        artifact.update(uri="shell.py", uriBaseId="PKG")
    out.write_text(json.dumps(document), encoding="utf-8")

    result = sarif_result(out, python, repo)

    assert {f.path for f in result.findings} == {"pkg/shell.py"}


def test_sarif_fingerprint_survives_move(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    first = tmp_path / "first.sarif"
    bandit_sarif(repo, python, first, "pkg/shell.py")
    before = by_rule(sarif_result(first, python, repo))["B602"]
    repo.write("pkg/shell.py", SHELL.replace("def run", "X = 1\n\n\ndef run"))
    second = tmp_path / "second.sarif"
    bandit_sarif(repo, python, second, "pkg/shell.py")

    after = by_rule(sarif_result(second, python, repo))["B602"]

    assert after.line == before.line + 3
    assert after.fingerprint == before.fingerprint


def test_sarif_partial_fingerprints_preferred(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "bandit.sarif"
    document = bandit_sarif(repo, python, out, "pkg/shell.py")
    plain = {f.rule_id: f.fingerprint for f in sarif_result(out, python, repo).findings}
    for result in document["runs"][0]["results"]:
        result["partialFingerprints"] = {"primaryLocationLineHash": result["ruleId"]}
    out.write_text(json.dumps(document), encoding="utf-8")
    repo.write("pkg/shell.py", SHELL.replace("shell=True", "shell=True  # changed"))

    tagged = {
        f.rule_id: f.fingerprint for f in sarif_result(out, python, repo).findings
    }
    repo.write("pkg/shell.py", SHELL)
    again = {f.rule_id: f.fingerprint for f in sarif_result(out, python, repo).findings}

    assert tagged["B602"] != plain["B602"]
    assert tagged == again


def test_sarif_unreadable_source_no_crash(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "bandit.sarif"
    bandit_sarif(repo, python, out, "pkg/shell.py")
    (repo.root / "pkg/shell.py").unlink()
    os.symlink("shell.py", repo.root / "pkg/shell.py")

    result = sarif_result(out, python, repo)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.value == 4
    assert len({f.fingerprint for f in result.findings}) == 4


def test_sarif_suppressed_results_counted(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "bandit.sarif"
    document = bandit_sarif(repo, python, out, "pkg/shell.py")
    results = document["runs"][0]["results"]
    results[0]["suppressions"] = [{"kind": "inSource"}]
    results[1]["suppressions"] = [{"kind": "external", "status": "rejected"}]
    out.write_text(json.dumps(document), encoding="utf-8")

    result = sarif_result(out, python, repo)

    measurement = result.measurements[0]
    assert measurement.value == 3
    assert measurement.details["suppressed"] == 1


def test_sarif_syntax_error_notification_counted(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL, "pkg/broken.py": SYNTAX_ERROR})
    out = tmp_path / "bandit.sarif"
    bandit_sarif(repo, python, out, "pkg/shell.py", "pkg/broken.py")

    result = sarif_result(out, python, repo)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.OK
    assert measurement.details["error_notifications"] == 1
    assert "level error" in measurement.reason


def test_sarif_message_secret_masked(make_repo, python, tmp_path):
    repo = make_repo({"settings.py": f'password = "{PASSWORD}"\n'})
    out = tmp_path / "bandit.sarif"
    document = bandit_sarif(repo, python, out, "settings.py")

    result = sarif_result(out, python, repo)

    assert PASSWORD in json.dumps(document)
    assert PASSWORD not in result.model_dump_json()


def test_sarif_two_files_merged(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL, "settings.py": 'password = "x1y2z3"\n'})
    first, second = tmp_path / "a.sarif", tmp_path / "b.sarif"
    bandit_sarif(repo, python, first, "pkg/shell.py")
    bandit_sarif(repo, python, second, "settings.py")
    ctx = make_ctx(repo, python, files=[], sarif_files=(first, second))

    result = SarifImportProbe().run(ctx)

    measurement = result.measurements[0]
    assert measurement.value == 5
    assert measurement.details["sarif_files"] == 2
    assert measurement.tool_version.count("Bandit") == 1


def test_sarif_no_files_not_applicable(make_repo, python):
    repo = make_repo({"pkg/shell.py": SHELL})

    result = SarifImportProbe().run(make_ctx(repo, python))

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.NOT_APPLICABLE
    assert measurement.reason == "no SARIF files given"


# SARIF security-severity scores (hand-written logs)


def scored_log(result_properties: dict | None, rule_properties: dict | None) -> dict:
    rule = {"id": "demo.rule"}
    if rule_properties is not None:
        rule["properties"] = rule_properties
    result = {
        "ruleId": "demo.rule",
        "ruleIndex": 0,
        "level": "note",
        "message": {"text": "demo issue"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "pkg/shell.py"},
                    "region": {"startLine": 5},
                }
            }
        ],
    }
    if result_properties is not None:
        result["properties"] = result_properties
    driver = {"name": "semgrep", "version": "1.0.0", "rules": [rule]}
    return {
        "version": SARIF_VERSION,
        "runs": [{"tool": {"driver": driver}, "results": [result]}],
    }


@pytest.mark.parametrize(
    ("result_properties", "rule_properties", "score", "severity"),
    [
        ({"security-severity": "9.8"}, None, 9.8, "critical"),
        (None, {"security-severity": "7.5"}, 7.5, "high"),
        ({"security-severity": 5.0}, {"security-severity": "9.9"}, 5.0, "medium"),
        (None, {"security-severity": "3.9"}, 3.9, "low"),
        (None, None, None, "low"),
    ],
    ids=["result-critical", "rule-high", "result-wins", "rule-low", "level-only"],
)
def test_sarif_security_severity(
    make_repo, python, tmp_path, result_properties, rule_properties, score, severity
):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "scored.sarif"
    document = scored_log(result_properties, rule_properties)
    out.write_text(json.dumps(document), encoding="utf-8")

    finding = sarif_result(out, python, repo).findings[0]

    assert finding.score == score
    assert finding.severity == severity
    assert finding.tool_severity == "note"
    assert finding.rule_id == "demo.rule"
    assert finding.path == "pkg/shell.py"
    assert finding.line == 5


@pytest.mark.parametrize(
    ("score", "expected"),
    [(10.0, "critical"), (9.0, "critical"), (8.9, "high"), (7.0, "high")]
    + [(6.9, "medium"), (4.0, "medium"), (3.9, "low"), (0.0, "low")],
)
def test_score_severity_bounds(score, expected):
    assert score_severity(score) == expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [("error", "high"), ("warning", "medium"), ("note", "low"), ("none", "low")],
)
def test_level_severity_mapping(level, expected):
    assert level_severity(level) == expected


# malformed SARIF (hand-written logs)


def valid_log() -> dict:
    return scored_log(None, None)


def break_log(change) -> dict:
    document = valid_log()
    change(document)
    return document


MALFORMED = [
    ("wrong-version", lambda d: d.update(version="2.0.0"), "version: expected"),
    ("no-version", lambda d: d.pop("version"), "$: missing 'version'"),
    ("no-runs", lambda d: d.pop("runs"), "$: missing 'runs'"),
    ("runs-not-list", lambda d: d.update(runs={}), "runs: expected a list"),
    (
        "no-driver-name",
        lambda d: d["runs"][0]["tool"]["driver"].pop("name"),
        "runs[0].tool.driver: missing 'name'",
    ),
    (
        "no-results",
        lambda d: d["runs"][0].pop("results"),
        "runs[0]: missing 'results'",
    ),
    (
        "results-not-list",
        lambda d: d["runs"][0].update(results={"a": 1}),
        "runs[0].results: expected a list",
    ),
    (
        "no-message",
        lambda d: d["runs"][0]["results"][0].pop("message"),
        "runs[0].results[0]: missing 'message'",
    ),
    (
        "message-not-object",
        lambda d: d["runs"][0]["results"][0].update(message="text"),
        "runs[0].results[0].message: expected an object",
    ),
    (
        "bad-level",
        lambda d: d["runs"][0]["results"][0].update(level="critical"),
        "runs[0].results[0].level: expected one of",
    ),
    (
        "bad-score",
        lambda d: d["runs"][0]["results"][0].update(
            properties={"security-severity": "high"}
        ),
        "runs[0].results[0].properties.security-severity: expected a number",
    ),
    (
        "failed-run",
        lambda d: d["runs"][0].update(invocations=[{"executionSuccessful": False}]),
        "runs[0].invocations[0]: executionSuccessful is false",
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [(change, expected) for _, change, expected in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_sarif_malformed_is_error(make_repo, python, tmp_path, change, expected):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "broken.sarif"
    out.write_text(json.dumps(break_log(change)), encoding="utf-8")

    result = sarif_result(out, python, repo)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert str(out) in measurement.reason
    assert expected in measurement.reason
    assert "Traceback" not in measurement.reason


def test_sarif_valid_log_passes(make_repo, python, tmp_path):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "valid.sarif"
    out.write_text(json.dumps(valid_log()), encoding="utf-8")

    result = sarif_result(out, python, repo)

    assert result.measurements[0].status is MeasurementStatus.OK
    assert result.measurements[0].value == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "SARIF file not found"), (b'{"version": ', "is not valid JSON")]
    + [(b"\xff\xfe\x00{", "is not")],
    ids=["missing", "invalid-json", "not-utf8"],
)
def test_sarif_unreadable_is_error(make_repo, python, tmp_path, content, expected):
    repo = make_repo({"pkg/shell.py": SHELL})
    out = tmp_path / "report.sarif"
    if content is not None:
        out.write_bytes(content)

    result = sarif_result(out, python, repo)

    measurement = result.measurements[0]
    assert measurement.status is MeasurementStatus.ERROR
    assert str(out) in measurement.reason
    assert expected in measurement.reason


def test_bandit_repo_module_not_run(make_repo, python):
    spoof = 'print(\'{"results": [], "errors": []}\')\n'
    repo = make_repo({"bandit.py": spoof, "pkg/shell.py": SHELL})

    result = BanditProbe().run(make_ctx(repo, python))

    assert result.measurements[0].tool_version.startswith("1.")
    assert "B602" in by_rule(result)

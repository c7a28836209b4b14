"""``daw check`` end to end: real repositories, real tools, exit codes and reports."""

from __future__ import annotations

import json
import os
import sqlite3
import xml.etree.ElementTree as ET

from daw.run import RunRecord

SECRET = "AKIAZ3MFLJ5WXQ7N2PTA"


def criterion(report: dict, criterion_id: str) -> dict:
    return next(c for c in report["criteria"] if c["id"] == criterion_id)


def test_clean_repository_passes(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    result = daw(
        "check", "--stage", "merge", "--format", "json", *offline(), cwd=repo.root
    )
    report = json.loads(result.out)
    assert result.code == 0, result.err
    assert report["status"] in ("pass", "warn")
    assert criterion(report, "code_quality.lint_errors")["status"] == "pass"
    assert criterion(report, "code_quality.test_failures")["status"] == "pass"
    assert criterion(report, "security.secrets")["status"] == "pass"
    assert criterion(report, "performance.api_p95_ms")["status"] == "n/a"
    assert (
        criterion(report, "performance.api_p95_ms")["reason"]
        == "not measured at this stage"
    )
    assert report["commit"] == repo.git("rev-parse", "HEAD").strip()
    assert len(report["policy_digest"]) == 64
    assert "ruff" in report["tool_versions"]


def test_json_report_schema_keys(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    report = json.loads(daw("check", "-f", "json", *offline(), cwd=repo.root).out)
    for key in (
        "run_id",
        "status",
        "stage",
        "environment",
        "policy_digest",
        "commit",
        "tool_versions",
        "criteria",
        "findings",
    ):
        assert key in report
    for item in report["criteria"]:
        assert set(item) >= {"id", "status", "value", "threshold", "action", "reason"}


def test_lint_error_blocks_commit(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    repo.write("bad.py", "import os\n")
    repo.git("add", "bad.py")
    result = daw("check", "--stage", "commit", "-f", "json", *offline(), cwd=repo.root)
    report = json.loads(result.out)
    lint = criterion(report, "code_quality.lint_errors")
    assert result.code == 1
    assert lint["status"] == "block"
    assert lint["value"] == 1
    assert any(
        f["path"] == "bad.py" and f["rule_id"] == "F401" for f in report["findings"]
    )


def test_commit_stage_reads_the_index(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    repo.write("later.py", "x = 1\n")
    repo.git("add", "later.py")
    repo.write("later.py", "import os\n")  # unstaged: must not be linted
    result = daw("check", "--stage", "commit", "-f", "json", *offline(), cwd=repo.root)
    report = json.loads(result.out)
    assert criterion(report, "code_quality.lint_errors")["status"] == "pass"


def test_secret_blocks_commit_without_leaking(
    daw, make_repo, clean_files, offline, tmp_path
):
    repo = make_repo(clean_files)
    repo.write("settings.py", f'AWS_KEY = "{SECRET}"\n')
    repo.git("add", "settings.py")
    result = daw("check", "--stage", "commit", *offline(), cwd=repo.root)
    assert result.code == 1
    assert "security.secrets" in result.out or "secrets" in result.out
    assert SECRET not in result.out
    assert SECRET not in result.err
    stored = sqlite3.connect(os.environ["DAW_STORE"]).execute(
        "select record_json from runs"
    )
    assert all(SECRET not in row[0] for row in stored)


def test_shell_injection_blocks_merge_only(daw, make_repo, clean_files, offline):
    files = dict(clean_files)
    files["runner.py"] = (
        "import subprocess\n\n\ndef run(cmd: str) -> None:\n"
        "    subprocess.call(cmd, shell=True)\n"
    )
    repo = make_repo(files)
    merge = json.loads(
        daw("check", "--stage", "merge", "-f", "json", *offline(), cwd=repo.root).out
    )
    commit = json.loads(
        daw(
            "check",
            "--stage",
            "commit",
            "--all-files",
            "-f",
            "json",
            *offline(),
            cwd=repo.root,
        ).out
    )
    assert criterion(merge, "security.sast_critical")["status"] == "block"
    assert criterion(commit, "security.sast_critical")["status"] == "warn"


def test_failing_test_blocks_merge(daw, make_repo, clean_files, offline):
    files = dict(clean_files)
    files["test_broken.py"] = "def test_broken():\n    assert 1 == 2\n"
    repo = make_repo(files)
    result = daw("check", "--stage", "merge", "-f", "json", *offline(), cwd=repo.root)
    report = json.loads(result.out)
    failures = criterion(report, "code_quality.test_failures")
    assert result.code == 1
    assert failures["status"] == "block"
    assert failures["value"] == 1


def test_vulnerable_dependency_blocks_merge(daw, make_repo, clean_files, offline):
    files = dict(clean_files)
    files["requirements.txt"] = "pyyaml==5.3.1\n"
    repo = make_repo(files)
    result = daw("check", "-f", "json", *offline(), cwd=repo.root)
    report = json.loads(result.out)
    assert result.code == 1
    assert criterion(report, "security.sca_critical")["status"] == "block"


def test_new_code_coverage_with_base(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    repo.git("checkout", "-q", "-b", "feature")
    repo.write(
        "extra.py", "def unused(x):\n    if x:\n        return 1\n    return 2\n"
    )
    repo.commit("add uncovered code")
    result = daw("check", "--base", "main", "-f", "json", *offline(), cwd=repo.root)
    report = json.loads(result.out)
    new_code = criterion(report, "code_quality.coverage_new_code")
    assert new_code["status"] == "block"
    assert new_code["value"] == 0
    assert result.code == 1


def test_reports_written(daw, make_repo, clean_files, offline, tmp_path):
    repo = make_repo(clean_files)
    sarif_path = tmp_path / "out" / "daw.sarif"
    junit_path = tmp_path / "out" / "daw.xml"
    result = daw(
        "check",
        "--sarif-out",
        str(sarif_path),
        "--junit-out",
        str(junit_path),
        *offline(),
        cwd=repo.root,
    )
    assert result.code == 0
    assert json.loads(sarif_path.read_text())["version"] == "2.1.0"
    cases = ET.parse(junit_path).getroot().iter("testcase")  # nosec B314 - our own output
    assert len(list(cases)) == 19


def test_markdown_output(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    result = daw("check", "-f", "markdown", *offline(), cwd=repo.root)
    assert result.code == 0
    assert "| " in result.out
    assert "code_quality" in result.out


def test_warm_check_uses_cache(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    first = json.loads(daw("check", "-f", "json", *offline(), cwd=repo.root).out)
    daw("check", "-f", "json", *offline(), cwd=repo.root)
    rows = sqlite3.connect(os.environ["DAW_STORE"]).execute(
        "select record_json from runs order by created_at"
    )
    runs = [RunRecord.model_validate_json(row[0]) for row in rows]
    second = runs[-1]
    cached = {p.probe for p in second.probes if p.cached}
    assert {"ruff", "bandit", "tests"} <= cached
    assert [c.status for c in runs[0].verdict.criteria] == [
        c.status for c in second.verdict.criteria
    ]
    assert first["status"] == second.verdict.status.value

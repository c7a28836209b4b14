"""User errors and malformed input: a clear message or a finding, never a traceback."""

from __future__ import annotations

import json
import os


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.out
    assert "Traceback" not in result.err


def criterion(report: dict, criterion_id: str) -> dict:
    return next(c for c in report["criteria"] if c["id"] == criterion_id)


def test_invalid_policy_exits_2(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    repo.write(
        ".daw/policy.yaml",
        "gates:\n  code_quality:\n    lint_errors:\n      action: stop\n",
    )
    result = daw("check", *offline(), cwd=repo.root)
    assert result.code == 2
    assert ".daw/policy.yaml:4:" in result.err
    assert "gates.code_quality.lint_errors.action" in result.err
    assert_no_traceback(result)


def test_policy_validate_reports_line(daw, make_repo, clean_files):
    repo = make_repo(clean_files)
    path = repo.write("strict.yaml", "waivers:\n  - criterion: x\n    owner: o\n")
    result = daw("policy", "validate", str(path), cwd=repo.root)
    assert result.code == 2
    assert "strict.yaml:2:" in result.err
    assert_no_traceback(result)


def test_policy_validate_accepts_valid(daw, make_repo, clean_files):
    repo = make_repo(clean_files)
    path = repo.write(
        "ok.yaml", "gates:\n  code_quality:\n    coverage_total: {threshold: 90}\n"
    )
    result = daw("policy", "validate", str(path), cwd=repo.root)
    assert result.code == 0
    assert "valid" in result.out


def test_policy_show_stage_and_env(daw, make_repo, clean_files):
    repo = make_repo(clean_files)
    repo.write(
        ".daw/policy.yaml",
        "environments:\n  production:\n    gates:\n      code_quality:\n"
        "        coverage_total: {threshold: 95}\n",
    )
    result = daw(
        "policy",
        "show",
        "--stage",
        "commit",
        "--env",
        "production",
        "--json",
        cwd=repo.root,
    )
    shown = json.loads(result.out)
    coverage = shown["gates"]["code_quality"]["coverage_total"]
    assert result.code == 0
    assert coverage["threshold"] == 95
    assert coverage["at_commit"] == "warns"
    assert shown["gates"]["code_quality"]["lint_errors"]["at_commit"] == "blocks"


def test_not_a_repository(daw, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    result = daw("check", cwd=folder)
    assert result.code == 2
    assert "not inside a git repository" in result.err
    assert_no_traceback(result)


def test_unknown_base_ref(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    result = daw("check", "--base", "no-such-branch", *offline(), cwd=repo.root)
    assert result.code == 2
    assert "unknown base ref 'no-such-branch'" in result.err
    assert_no_traceback(result)


def test_unknown_stage_is_usage_error(daw, make_repo, clean_files):
    repo = make_repo(clean_files)
    result = daw("check", "--stage", "deploy", cwd=repo.root)
    assert result.code == 2
    assert_no_traceback(result)


def test_corrupt_coverage_xml_is_error(daw, make_repo, clean_files, offline, tmp_path):
    repo = make_repo(clean_files)
    report = tmp_path / "coverage.xml"
    report.write_text("<coverage><packages><package>")
    result = daw(
        "check",
        "--stage",
        "release",
        "--coverage-report",
        str(report),
        "-f",
        "json",
        *offline(),
        cwd=repo.root,
    )
    total = criterion(json.loads(result.out), "code_quality.coverage_total")
    assert result.code == 1
    assert total["status"] == "error"
    assert "coverage.xml" in total["reason"]
    assert_no_traceback(result)


def test_sarif_missing_fields_is_error(daw, make_repo, clean_files, offline, tmp_path):
    repo = make_repo(clean_files)
    sarif = tmp_path / "scan.sarif"
    sarif.write_text(
        json.dumps({"version": "2.1.0", "runs": [{"results": [{"ruleId": "x"}]}]})
    )
    result = daw(
        "check", "--sarif", str(sarif), "-f", "json", *offline(), cwd=repo.root
    )
    critical = criterion(json.loads(result.out), "security.sast_critical")
    assert result.code == 1
    assert critical["status"] == "error"
    assert "scan.sarif" in critical["reason"]
    assert_no_traceback(result)


def test_awkward_files_do_not_crash(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    repo.write("blob.bin", bytes(range(256)) * 64)
    repo.write("latin.py", "name = 'caf\xe9'\n".encode("latin-1"))
    big = repo.root / "big.txt"
    with big.open("wb") as out:
        out.truncate(50 * 1024 * 1024)
    os.symlink("loop_b", repo.root / "loop_a")
    os.symlink("loop_a", repo.root / "loop_b")
    repo.commit("awkward files")
    result = daw("check", "--stage", "merge", "-f", "json", *offline(), cwd=repo.root)
    report = json.loads(result.out)
    assert result.code in (0, 1)
    assert report["status"] in ("pass", "warn", "block")
    assert_no_traceback(result)


def test_store_not_writable_is_clear(daw, make_repo, clean_files, offline, tmp_path):
    repo = make_repo(clean_files)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    result = daw("check", "--store", str(corrupt), *offline(), cwd=repo.root)
    assert result.code == 2
    assert str(corrupt) in result.err
    assert_no_traceback(result)

"""Usage errors and small conveniences of ``daw check`` and ``daw runs``."""

from __future__ import annotations

import json


def test_repo_pointing_at_file(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    result = daw(
        "check", "--repo", str(repo.root / "app.py"), *offline(), cwd=repo.root
    )
    assert result.code == 2
    assert "is not a folder" in result.err
    assert "Traceback" not in result.err


def test_missing_osv_db_is_usage_error(daw, make_repo, clean_files, tmp_path):
    repo = make_repo(clean_files)
    missing = tmp_path / "nowhere"
    result = daw("check", "--osv-db", str(missing), "-q", cwd=repo.root)
    assert result.code == 2
    assert f"--osv-db {missing}: no such file or folder" in result.err


def test_policy_folder_is_usage_error(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    result = daw("check", "--policy", str(repo.root), *offline(), cwd=repo.root)
    assert result.code == 2
    assert "is a folder, expected a file" in result.err


def test_empty_test_command(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    result = daw("check", "--test-command", "", *offline(), cwd=repo.root)
    assert result.code == 2
    assert "--test-command: it is empty" in result.err


def test_invalid_waiver_date(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    repo.write(
        ".daw/policy.yaml",
        "waivers:\n  - criterion: code_quality.lint_errors\n    owner: o\n"
        "    reason: r\n    expires: 2027-02-30\n",
    )
    result = daw("check", *offline(), cwd=repo.root)
    assert result.code == 2
    assert ".daw/policy.yaml:5:" in result.err
    assert "Traceback" not in result.err


def test_runs_list_without_store(daw, make_repo, clean_files, tmp_path):
    repo = make_repo(clean_files)
    missing = tmp_path / "typo" / "runs.db"
    result = daw("runs", "list", "--store", str(missing), cwd=repo.root)
    assert result.code == 2
    assert f"no run store at {missing}" in result.err
    assert not missing.parent.exists()


def test_runs_list_full_ids(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    report = json.loads(daw("check", "-f", "json", *offline(), cwd=repo.root).out)
    listed = daw("runs", "list", cwd=repo.root)
    assert listed.code == 0
    assert report["run_id"] in listed.out.splitlines()[1]


def test_quiet_prints_nothing_on_stderr(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    result = daw("check", "-f", "json", *offline(), cwd=repo.root)
    assert result.code == 0
    assert result.err == ""


def test_default_store_is_git_ignored(
    daw, make_repo, clean_files, offline, monkeypatch
):
    monkeypatch.delenv("DAW_STORE")
    repo = make_repo(clean_files)
    result = daw("check", *offline(), cwd=repo.root)
    ignored = repo.git(
        "status", "--porcelain", "--ignored", "--untracked-files=all", ".daw"
    )
    assert result.code == 0
    assert (repo.root / ".daw" / "daw.db").is_file()
    assert "!! .daw/daw.db" in ignored
    assert "?? .daw/.gitignore" in ignored

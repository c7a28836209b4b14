"""Stored runs: listing, showing and replaying with the same or another policy."""

from __future__ import annotations

import json
import os
import sqlite3


def only_run_id() -> str:
    rows = (
        sqlite3.connect(os.environ["DAW_STORE"])
        .execute("select run_id from runs")
        .fetchall()
    )
    assert len(rows) == 1
    return rows[0][0]


def test_replay_is_byte_identical(daw, make_repo, clean_files, offline):
    files = dict(clean_files)
    files["bad.py"] = "import os\n"
    repo = make_repo(files)
    original = daw("check", "--stage", "merge", "-f", "json", *offline(), cwd=repo.root)
    run_id = only_run_id()
    replayed = daw("replay", run_id, "-f", "json", cwd=repo.root)
    assert original.code == 1
    assert replayed.code == 1
    assert replayed.out == original.out


def test_replay_after_tree_changes(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    original = daw("check", "-f", "json", *offline(), cwd=repo.root)
    repo.write("bad.py", "import os\n")
    repo.commit("break lint")
    replayed = daw("replay", only_run_id(), "-f", "json", cwd=repo.root)
    assert replayed.out == original.out


def test_replay_with_other_policy(daw, make_repo, clean_files, offline):
    files = dict(clean_files)
    files["bad.py"] = "import os\n"
    repo = make_repo(files)
    daw("check", "-f", "json", *offline(), cwd=repo.root)
    lenient = repo.write(
        "lenient.yaml", "gates:\n  code_quality:\n    lint_errors: {action: warn}\n"
    )
    result = daw(
        "replay", only_run_id(), "--policy", str(lenient), "-f", "json", cwd=repo.root
    )
    report = json.loads(result.out)
    lint = next(c for c in report["criteria"] if c["id"] == "code_quality.lint_errors")
    assert result.code == 0
    assert lint["status"] == "warn"
    assert "code_quality.lint_errors: block -> warn" in result.err


def test_runs_list_and_show(daw, make_repo, clean_files, offline):
    repo = make_repo(clean_files)
    daw("check", *offline(), cwd=repo.root)
    run_id = only_run_id()
    listed = daw("runs", "list", cwd=repo.root)
    shown = daw("runs", "show", run_id[:10], "-f", "json", cwd=repo.root)
    assert run_id in listed.out
    assert json.loads(shown.out)["run_id"] == run_id


def test_unknown_run_id(daw, make_repo, clean_files):
    repo = make_repo(clean_files)
    result = daw("replay", "20990101T000000-abcdef", cwd=repo.root)
    assert result.code == 2
    assert "Traceback" not in result.err

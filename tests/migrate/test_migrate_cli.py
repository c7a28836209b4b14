"""Tests of ``daw migrate``: exit codes, output without passwords, orphaned forks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from daw.cli.main import main

SECRET = "s3cretpw"


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL)"
        )
        conn.execute(
            "INSERT INTO accounts (email)"
            " SELECT 'u' || g FROM generate_series(1, 10000) g"
        )


def _with_password(pg_url: str) -> str:
    return pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_note.sql").write_text(
        "ALTER TABLE accounts ADD COLUMN note text;\n"
    )
    monkeypatch.setenv("DAW_STATE_DIR", str(tmp_path / "state" / "forks"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _files_text(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.rglob("*") if p.is_file())


def test_run_never_prints_password(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    url = _with_password(pg_url)
    code = main(["migrate", "run", "-d", url, "-m", "migrations", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert SECRET not in captured.out
    assert SECRET not in captured.err
    assert SECRET not in _files_text(workspace / "state")
    assert json.loads(captured.out)["status"] == "promoted"


def test_plan_never_prints_password(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    code = main(["migrate", "plan", "-d", _with_password(pg_url), "-m", "migrations"])
    captured = capsys.readouterr()
    assert code == 0
    assert SECRET not in captured.out + captured.err
    assert "strategy: template" in captured.out


def test_progress_lines_on_stderr(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    main(["migrate", "run", "-d", pg_url, "-m", "migrations"])
    err = capsys.readouterr().err
    for step in ("plan", "fork", "apply to fork", "validate", "promote", "discard"):
        assert f"[daw migrate] {step}: " in err


def test_blocked_exit_one(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    (workspace / "migrations" / "0002_drop.sql").write_text("DROP TABLE accounts;\n")
    code = main(["migrate", "run", "-d", pg_url, "-m", "migrations"])
    assert code == 1
    assert "production is unchanged" in capsys.readouterr().out


def test_bad_url_exit_two(workspace: Path, capsys) -> None:
    code = main(
        ["migrate", "plan", "-d", f"mysql://u:{SECRET}@h/d", "-m", "migrations"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "unsupported database URL" in err
    assert SECRET not in err


def test_unknown_strategy_exit_two(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    code = main(
        ["migrate", "run", "-d", pg_url, "-m", "migrations", "--strategy", "zfs"]
    )
    assert code == 2
    assert "unknown fork strategy 'zfs'" in capsys.readouterr().err


def test_schema_then_expected(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    assert main(["migrate", "schema", "-d", pg_url, "-o", "schema.json"]) == 0
    code = main(
        [
            "migrate",
            "run",
            "-d",
            pg_url,
            "-m",
            "migrations",
            "--expected-schema",
            "schema.json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "unexpected column public.accounts.note" in out


def test_schema_to_stdout(sqlite_path: Path, workspace: Path, capsys) -> None:
    assert main(["migrate", "schema", "-d", str(sqlite_path)]) == 0
    dump = json.loads(capsys.readouterr().out)
    assert list(dump["tables"]) == ["customers"]


def _fork_databases(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'daw_fork_%'"
        ).fetchall()
    return [row[0] for row in rows]


def _wait_for_fork(state: Path, deadline_s: float = 30.0) -> dict:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for path in state.glob("*.json"):
            data = json.loads(path.read_text())
            if data.get("bytes_copied"):
                return data
        time.sleep(0.1)
    raise AssertionError(f"no fork state file appeared in {state}")


def test_killed_run_leaves_orphan(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    state = workspace / "state" / "forks"
    env = {
        **os.environ,
        "DAW_MIGRATE_PAUSE_AFTER_FORK": "60",
        "DAW_STATE_DIR": str(state),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daw",
            "migrate",
            "run",
            "-d",
            _with_password(pg_url),
            "-m",
            "migrations",
        ],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        recorded = _wait_for_fork(state)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert SECRET not in json.dumps(recorded)
    assert recorded["name"] in _fork_databases(pg_url)

    assert main(["migrate", "forks", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["forks"]
    assert [item["name"] for item in listed] == [recorded["name"]]
    assert listed[0]["orphan"] is True

    assert main(["migrate", "cleanup"]) == 0
    assert f"discarded {recorded['name']}" in capsys.readouterr().out
    assert recorded["name"] not in _fork_databases(pg_url)


def test_next_run_drops_orphan(pg_url: str, workspace: Path) -> None:
    _seed(pg_url)
    state = workspace / "state" / "forks"
    env = {
        **os.environ,
        "DAW_MIGRATE_PAUSE_AFTER_FORK": "60",
        "DAW_STATE_DIR": str(state),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daw",
            "migrate",
            "run",
            "-d",
            pg_url,
            "-m",
            "migrations",
        ],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        recorded = _wait_for_fork(state)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert (
        main(["migrate", "run", "-d", pg_url, "-m", "migrations", "--format", "json"])
        == 0
    )
    assert recorded["name"] not in _fork_databases(pg_url)
    assert list(state.glob("*.json")) == []


def test_libpq_dsn_hides_password(workspace: Path, capsys) -> None:
    dsn = "host=127.0.0.1 dbname=x user=postgres password=hunter2pw"
    code = main(["migrate", "plan", "-d", dsn, "-m", "migrations"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unsupported database URL" in err
    assert "hunter2pw" not in err


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--lock-timeout", "-5"),
        ("--lock-timeout", "nan"),
        ("--statement-timeout", "inf"),
        ("--statement-timeout", "1e12"),
        ("--large-table-mb", "nan"),
        ("--large-table-mb", "-1"),
    ],
)
def test_invalid_number_exit_two(
    sqlite_path: Path, workspace: Path, capsys, option: str, value: str
) -> None:
    args = ["migrate", "run", "-d", str(sqlite_path), "-m", "migrations"]
    code = main([*args, f"{option}={value}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"Invalid value for '{option}'" in err
    assert not (workspace / "state").exists()


def test_plan_rejects_nan_size(sqlite_path: Path, workspace: Path, capsys) -> None:
    args = ["migrate", "plan", "-d", str(sqlite_path), "-m", "migrations"]
    assert main([*args, "--large-table-mb", "nan"]) == 2
    assert "Invalid value for '--large-table-mb'" in capsys.readouterr().err


def test_run_help_text(capsys) -> None:
    assert main(["migrate", "run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in (
        "snapshot",
        "template",
        "basebackup",
        "sqlite-reflink",
        "sqlite-backup",
    ):
        assert name in text
    for placeholder in ("URL", "PATH", "SECONDS", "MB", "FINGERPRINT"):
        assert placeholder in text
    assert "FLOAT" not in text
    assert "TEXT" not in text


def test_schema_help_plain(capsys) -> None:
    assert main(["migrate", "schema", "--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out
    assert "--expected-schema" in out


def test_validation_failure_prints_gate(pg_url: str, workspace: Path, capsys) -> None:
    _seed(pg_url)
    (workspace / "migrations" / "0002_drop.sql").write_text("DROP TABLE accounts;\n")
    args = ["migrate", "run", "-d", pg_url, "-m", "migrations"]
    code = main([*args, "--test-command", f"{sys.executable} -c 'raise SystemExit(3)'"])
    out = capsys.readouterr().out
    assert code == 1
    assert "validation-failed" in out
    assert "gate: blocks production: migration.destructive" in out
    assert "production is unchanged" in out

"""Tests of the SQLite run store on real files, including two writing processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from daw.errors import StoreError
from daw.run import RunRecord
from daw.store.sqlite import SCHEMA_VERSION, RunStore

MakeRecord = Callable[..., RunRecord]

WRITER = """
import sys
from pathlib import Path

from daw.run import RunRecord
from daw.store.sqlite import RunStore

store_path, record_path, prefix, count = sys.argv[1:5]
template = RunRecord.model_validate_json(Path(record_path).read_text("utf-8"))
for index in range(int(count)):
    store = RunStore(Path(store_path))
    store.save(template.model_copy(update={"run_id": f"{prefix}-{index:03}"}))
"""


def _raw_json(path: Path, run_id: str) -> str:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT record_json FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    finally:
        conn.close()
    return row[0]


def _pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def test_store_round_trip(tmp_path: Path, make_record: MakeRecord) -> None:
    record = make_record()
    store = RunStore(tmp_path / "daw.db")
    store.save(record)
    loaded = RunStore(tmp_path / "daw.db").get(record.run_id)

    assert loaded == record
    assert loaded.model_dump_json() == record.model_dump_json()
    assert loaded.measurements[1].details == {"files": 12, "branch": False}
    assert loaded.probes[0].duration_s == 0.42


def test_store_keeps_record_json_exactly(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    record = make_record()
    RunStore(tmp_path / "daw.db").save(record)

    assert _raw_json(tmp_path / "daw.db", record.run_id) == record.model_dump_json()


def test_store_creates_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "daw.db"
    RunStore(path)

    assert path.is_file()


def test_store_schema_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "daw.db"
    RunStore(path)

    assert _pragma(path, "user_version") == SCHEMA_VERSION
    assert _pragma(path, "journal_mode") == "wal"


def test_store_empty_file_is_initialised(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    path = tmp_path / "daw.db"
    path.write_bytes(b"")
    store = RunStore(path)
    store.save(make_record())

    assert len(store.list()) == 1


def test_store_get_by_prefix(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record("20260301T120000-aaaaaa000001"))
    store.save(make_record("20260302T120000-bbbbbb000002"))

    assert store.get("20260302").run_id == "20260302T120000-bbbbbb000002"
    assert store.get("20260301T12").run_id == "20260301T120000-aaaaaa000001"


def test_store_prefix_ambiguous(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record("20260301T120000-aaaaaa000001"))
    store.save(make_record("20260301T130000-cccccc000003"))

    with pytest.raises(StoreError) as caught:
        store.get("20260301T1")

    assert "matches several runs" in caught.value.message
    assert "20260301T120000-aaaaaa000001" in caught.value.message
    assert "20260301T130000-cccccc000003" in caught.value.message
    assert caught.value.hint == "give more characters of the run id"


def test_store_prefix_too_short(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record("20260301T120000-aaaaaa000001"))

    with pytest.raises(StoreError) as caught:
        store.get("20260")

    assert caught.value.message.startswith("no run with id '20260' in ")
    assert caught.value.hint is not None
    assert "at least 6" in caught.value.hint


def test_store_not_found(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record("20260301T120000-aaaaaa000001"))

    with pytest.raises(StoreError) as caught:
        store.get("20270101")

    assert caught.value.message == (
        f"no run with id or id prefix '20270101' in {tmp_path / 'daw.db'}"
    )


def test_store_exact_id_wins_over_prefix(
    tmp_path: Path, make_record: MakeRecord
) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record("abcdef"))
    store.save(make_record("abcdef-2"))

    assert store.get("abcdef").run_id == "abcdef"


def test_store_list_newest_first(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record("run-b", "2026-03-01T10:00:00+00:00"))
    store.save(make_record("run-a", "2026-03-02T10:00:00+00:00"))
    store.save(make_record("run-c", "2026-03-01T10:00:00+00:00"))
    store.save(make_record("run-d", "2026-02-01T10:00:00+00:00"))

    assert [s.run_id for s in store.list()] == ["run-a", "run-c", "run-b", "run-d"]
    assert [s.run_id for s in store.list(limit=2)] == ["run-a", "run-c"]


def test_store_list_summary_fields(tmp_path: Path, make_record: MakeRecord) -> None:
    record = make_record()
    store = RunStore(tmp_path / "daw.db")
    store.save(record)
    summary = store.list()[0]

    assert summary.run_id == record.run_id
    assert summary.created_at == record.created_at
    assert summary.repo == "/work/example"
    assert summary.commit == record.commit
    assert summary.stage == "merge"
    assert summary.environment == "development"
    assert summary.status == "block"
    assert summary.policy_digest == record.verdict.policy_digest


def test_store_list_by_repo(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record("run-1", repo="/work/one"))
    store.save(make_record("run-2", repo="/work/two"))

    assert [s.run_id for s in store.list(repo="/work/two")] == ["run-2"]
    assert store.list(repo="/work/none") == []


def test_store_list_rejects_zero_limit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        RunStore(tmp_path / "daw.db").list(limit=0)


def test_store_save_twice_is_noop(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record())
    store.save(make_record())

    assert len(store.list()) == 1


def test_store_rejects_changed_record(tmp_path: Path, make_record: MakeRecord) -> None:
    store = RunStore(tmp_path / "daw.db")
    store.save(make_record())
    changed = make_record(repo="/work/other")

    with pytest.raises(StoreError, match="already stored .* with different content"):
        store.save(changed)
    assert store.get(changed.run_id).repo == "/work/example"


def test_store_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "daw.db"
    path.write_bytes(b"this is not an SQLite database\n" * 200)

    with pytest.raises(StoreError) as caught:
        RunStore(path)

    assert caught.value.message.startswith(f"{path} is not a valid run store")
    assert caught.value.hint == f"move {path} away; DAW then creates a new store there"


def test_store_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()

    with pytest.raises(StoreError) as caught:
        RunStore(path)

    assert "not a DAW run store (it has the tables notes)" in caught.value.message


def test_store_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "daw.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()

    with pytest.raises(StoreError) as caught:
        RunStore(path)

    assert "schema version 99" in caught.value.message
    assert caught.value.hint is not None
    assert "upgrade DAW" in caught.value.hint


def test_store_path_is_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        RunStore(tmp_path)

    assert caught.value.message.startswith(f"cannot open the run store {tmp_path}")


def test_store_unreadable_record(tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "daw.db"
    store = RunStore(path)
    store.save(make_record("run-x1"))
    conn = sqlite3.connect(path)
    conn.execute('UPDATE runs SET record_json = \'{"run_id": "run-x1"}\'')
    conn.commit()
    conn.close()

    with pytest.raises(StoreError, match="run run-x1 in .* cannot be read"):
        store.get("run-x1")


def test_store_locked_times_out(tmp_path: Path, make_record: MakeRecord) -> None:
    path = tmp_path / "daw.db"
    store = RunStore(path, timeout_s=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as caught:
            store.save(make_record())
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert "stayed locked by another process for 0.2 s" in caught.value.message


def test_store_concurrent_processes(tmp_path: Path, make_record: MakeRecord) -> None:
    store_path = tmp_path / "shared" / "daw.db"
    record_path = tmp_path / "record.json"
    record_path.write_text(make_record().model_dump_json(), encoding="utf-8")
    count = 25
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(store_path),
                str(record_path),
                name,
                str(count),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    outputs = [writer.communicate(timeout=120) for writer in writers]

    assert [writer.returncode for writer in writers] == [0, 0], outputs
    stored = RunStore(store_path).list(limit=1000)
    assert len(stored) == 2 * count
    assert {s.run_id.split("-")[0] for s in stored} == {"first", "second"}

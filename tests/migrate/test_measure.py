"""Tests of statement timing, the lock sampler and the impact report on PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from daw.migrate.dburl import parse_url
from daw.migrate.measure import (
    LockSampler,
    StatementRecorder,
    TableSize,
    predict_impact,
    table_sizes,
)
from daw.migrate.promote import apply_migrations
from daw.migrate.sources import SqlFolderSource


def _seed(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE accounts (id serial PRIMARY KEY, email text)")
        conn.execute(
            "INSERT INTO accounts (email)"
            " SELECT 'u' || g FROM generate_series(1, %s) g",
            (rows,),
        )


def _source(tmp_path: Path, text: str) -> SqlFolderSource:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_change.sql").write_text(text)
    return SqlFolderSource(folder)


def _sampled_apply(pg_url: str, source: SqlFolderSource):
    url = parse_url(pg_url)
    samplers: list[LockSampler] = []

    def on_connect(conn) -> None:
        sampler = LockSampler(url, pid=conn.info.backend_pid)
        sampler.start()
        samplers.append(sampler)

    result = apply_migrations(url, source, source.migrations(), on_connect=on_connect)
    return result, samplers[0].stop(), samplers[0]


def test_sampler_sees_access_exclusive(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url, 1000)
    source = _source(
        tmp_path, "ALTER TABLE accounts ADD COLUMN note text;\nSELECT pg_sleep(0.5);\n"
    )
    result, locks, sampler = _sampled_apply(pg_url, source)
    assert result.ok, result.error
    held = [
        lock
        for lock in locks
        if lock.relation == "public.accounts" and lock.mode == "AccessExclusiveLock"
    ]
    assert len(held) == 1
    assert held[0].granted is True
    assert held[0].sampled_s >= 0.3
    assert sampler.error is None


def test_sampler_ignores_other_sessions(pg_url: str) -> None:
    _seed(pg_url, 10)
    url = parse_url(pg_url)
    with psycopg.connect(pg_url) as other:
        other.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        sampler = LockSampler(url, pid=0)
        sampler.start()
        time.sleep(0.2)
        locks = sampler.stop()
    assert locks == []
    assert sampler.polls >= 2


def test_sampler_without_pid_sees_all(pg_url: str) -> None:
    _seed(pg_url, 10)
    with psycopg.connect(pg_url) as other:
        other.execute("LOCK TABLE accounts IN SHARE MODE")
        sampler = LockSampler(parse_url(pg_url), pid=None)
        sampler.start()
        time.sleep(0.2)
        locks = sampler.stop()
    modes = {(lock.relation, lock.mode) for lock in locks}
    assert ("public.accounts", "ShareLock") in modes


def test_sampler_reports_connection_error() -> None:
    sampler = LockSampler(
        parse_url("postgresql://postgres@127.0.0.1:5432/daw_test_absent")
    )
    sampler.start()
    sampler.stop()
    assert sampler.error is not None
    assert "lock sampling failed" in sampler.error


def test_statement_durations_recorded(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url, 10)
    source = _source(tmp_path, "SELECT pg_sleep(0.2);\nSELECT 1;\n")
    recorder = StatementRecorder()
    conn = psycopg.connect(pg_url, autocommit=True)
    try:
        source.apply(conn, source.migrations()[0], on_statement=recorder)
    finally:
        conn.close()
    assert [timing.index for timing in recorder.timings] == [1, 2]
    assert recorder.timings[0].seconds >= 0.2
    assert recorder.timings[0].text == "SELECT pg_sleep(0.2)"


def test_table_sizes_grow(pg_url: str) -> None:
    _seed(pg_url, 10_000)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        before = table_sizes(conn, analyze=True)
        conn.execute("INSERT INTO accounts (email) SELECT email FROM accounts")
        after = table_sizes(conn, analyze=True)
    assert before["public.accounts"].rows == 10_000
    assert after["public.accounts"].rows == 20_000
    assert after["public.accounts"].bytes > before["public.accounts"].bytes


def test_impact_predicts_lock(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url, 1000)
    source = _source(
        tmp_path, "ALTER TABLE accounts ADD COLUMN note text;\nSELECT pg_sleep(0.3);\n"
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        before = table_sizes(conn, analyze=True)
    result, locks, _sampler = _sampled_apply(pg_url, source)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        after = table_sizes(conn, analyze=True)
    report = predict_impact(result.recorder.timings, locks, before, after)
    modes = [lock["mode"] for lock in report["tables"]["public.accounts"]["locks"]]
    assert "AccessExclusiveLock" in modes
    predictions = [p for p in report["predictions"] if "AccessExclusiveLock" in p]
    assert "blocks all reads and writes" in predictions[0]
    assert report["tables"]["public.daw_schema_migrations"]["created"] is True


def test_impact_growth_fields() -> None:
    report = predict_impact(
        [], [], {"public.t": TableSize(100, 1)}, {"public.t": TableSize(150, 2)}
    )
    assert report["tables"]["public.t"]["bytes_growth"] == 50
    assert report["tables"]["public.t"]["rows_after"] == 2

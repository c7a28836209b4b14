"""Benchmark: seconds to fork a database of 10 MB, 100 MB (and 1 GB) per strategy.

Run as root on a machine with PostgreSQL 15 binaries and xfsprogs:

    .venv/bin/python benchmarks/bench_forks.py            # 10 MB and 100 MB
    .venv/bin/python benchmarks/bench_forks.py --large    # adds 1 GB

It mounts a sparse XFS image (reflink=1) on a loop device, runs a PostgreSQL
cluster of its own there (initdb, trust, 127.0.0.1 on a free port) and times
each strategy three times per size, reporting the median. SQLite files of the
same size are forked on the XFS volume (reflink) and on the folder of
--sqlite-dir (backup API). Everything is removed at the end. The Markdown
table goes to stdout; --write appends it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from daw.migrate.dburl import DatabaseUrl, parse_url
from daw.migrate.forks import ForkState, get_strategy
from daw.migrate.forks.base import new_fork_run_id
from daw.migrate.forks.cluster import as_service_user, free_port, postgres_bindir
from daw.migrate.forks.reflink import filesystem_type

REPEATS = 3
ROW_BYTES = 1000
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=600)


@contextmanager
def xfs_volume(size_bytes: int) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="daw_bench_xfs_"))
    base.chmod(0o755)
    image, mount = base / "volume.img", base / "mnt"
    mount.mkdir()
    with image.open("wb") as handle:
        handle.truncate(size_bytes)
    _run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)])
    _run(["mount", "-o", "loop", str(image), str(mount)])
    mount.chmod(0o755)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def cluster(mount: Path) -> Iterator[DatabaseUrl]:
    bindir = postgres_bindir(15)
    home = mount / "cluster"
    home.mkdir()
    shutil.chown(home, "postgres", "postgres")
    data = home / "data"
    _run(
        as_service_user(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        )
    )
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} "
        f"-c unix_socket_directories={home}"
    )
    _run(
        as_service_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(home / "log"),
                "-w",
                "-o",
                options,
                "start",
            ]
        )
    )
    try:
        yield parse_url(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run(
            as_service_user(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            ),
            check=False,
            timeout=120,
        )


def make_database(server: DatabaseUrl, megabytes: int) -> DatabaseUrl:
    name = f"daw_test_bench_{megabytes}"
    with psycopg.connect(server.render(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = server.with_database(name)
    rows = megabytes * 1_000_000 // ROW_BYTES
    with psycopg.connect(url.render(), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 28) AS body"
            " FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CHECKPOINT")
    return url


def drop_database(server: DatabaseUrl, url: DatabaseUrl) -> None:
    with psycopg.connect(server.render(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.database} WITH (FORCE)")


def make_sqlite(folder: Path, megabytes: int) -> DatabaseUrl:
    path = folder / f"bench_{megabytes}.db"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT)")
    rows = megabytes * 1_000_000 // ROW_BYTES
    body = "x" * (ROW_BYTES - 40)
    conn.executemany(
        "INSERT INTO filler (body) VALUES (?)", ((body,) for _ in range(rows))
    )
    conn.commit()
    conn.close()
    return parse_url(str(path))


def time_strategy(
    name: str, source: DatabaseUrl, state: ForkState
) -> tuple[float, int]:
    strategy = get_strategy(name)
    seconds, copied = [], 0
    for _ in range(REPEATS):
        started = time.monotonic()
        fork = strategy.create(source, new_fork_run_id(), state)
        seconds.append(time.monotonic() - started)
        copied = fork.bytes_copied
        strategy.discard(fork)
        state.remove(fork.name)
    return statistics.median(seconds), copied


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {memory_kib / 1024 / 1024:.0f} GiB memory, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--large", action="store_true", help="Also time 1 GB (1000 MB)."
    )
    parser.add_argument(
        "--write", action="store_true", help="Append to docs/benchmarks.md."
    )
    parser.add_argument("--sqlite-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    sizes = [10, 100] + ([1000] if args.large else [])
    image_bytes = (max(sizes) * 6 + 1024) * 1024 * 1024
    rows = []
    with tempfile.TemporaryDirectory(prefix="daw_bench_state_") as state_dir:
        state = ForkState(Path(state_dir))
        with xfs_volume(image_bytes) as mount, cluster(mount) as server:
            for megabytes in sizes:
                source = make_database(server, megabytes)
                for name in ("template", "basebackup", "snapshot"):
                    median, copied = time_strategy(name, source, state)
                    rows.append(
                        (name, megabytes, median, copied, "xfs (loop, reflink=1)")
                    )
                drop_database(server, source)
                sqlite_xfs = make_sqlite(mount, megabytes)
                median, copied = time_strategy("sqlite-reflink", sqlite_xfs, state)
                rows.append(
                    (
                        "sqlite-reflink",
                        megabytes,
                        median,
                        copied,
                        "xfs (loop, reflink=1)",
                    )
                )
                sqlite_xfs.sqlite_path.unlink()
                sqlite_disk = make_sqlite(args.sqlite_dir, megabytes)
                median, copied = time_strategy("sqlite-backup", sqlite_disk, state)
                rows.append(
                    (
                        "sqlite-backup",
                        megabytes,
                        median,
                        copied,
                        filesystem_type(args.sqlite_dir),
                    )
                )
                sqlite_disk.sqlite_path.unlink()
    table = render(rows)
    print(table)
    if args.write:
        with DOC.open("a", encoding="utf-8") as handle:
            handle.write("\n" + table)


def render(rows: list[tuple[str, int, float, int, str]]) -> str:
    lines = [
        "## Database forks",
        "",
        f"Measured with `benchmarks/bench_forks.py --large` on {machine()}. Median "
        f"of {REPEATS} forks per cell. The PostgreSQL 15 cluster and the SQLite "
        "reflink files are on a loop-mounted XFS image (reflink=1) whose backing file "
        "sits on ext4; the SQLite backup files are on the folder named in the last "
        "column. Bytes copied: the fork database's size (template), the fork's data "
        "folder (basebackup), the logical size of the cloned data folder (snapshot: "
        "its blocks are shared with the source until either side writes), the file "
        "size (SQLite). Cluster strategies copy the whole cluster: the other "
        "databases and the WAL in pg_wal, which after loading the test data is "
        "large for the snapshot, whose clone includes pg_wal as it is.",
        "",
        "| strategy | database size (MB) | median seconds | bytes copied "
        "| filesystem |",
        "|---|---:|---:|---:|---|",
    ]
    for name, megabytes, median, copied, filesystem in rows:
        lines.append(
            f"| {name} | {megabytes} | {median:.3f} | {copied:,} | {filesystem} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

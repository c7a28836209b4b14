"""Database URLs: parsing, display without the password, connecting, and fork URLs.

Two kinds are accepted: ``postgresql://user:password@host:port/dbname?options``
(also ``postgres://``) and ``sqlite:///path/to/file.db``. A bare path ending in
``.db``, ``.sqlite`` or ``.sqlite3`` is read as a SQLite file. The password stays
inside ``DatabaseUrl`` and ``connect``; every text meant for people goes through
``redacted``.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from daw.migrate.errors import MigrationError
from daw.redact import redact

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
CONNECT_TIMEOUT_S = 10
MAINTENANCE_DATABASE = "postgres"

# A quoted libpq keyword/value such as password='it\'s', whose backslash escape
# would end daw.redact's simpler quoted pattern early.
_QUOTED_PASSWORD = re.compile(r"(?i)\b(password\s*=\s*)'(?:[^'\\]|\\.)*'")


class DatabaseUrlError(MigrationError):
    """A database URL is invalid or its database cannot be reached."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed database URL.

    For PostgreSQL ``host``, ``port``, ``user``, ``password``, ``database`` and
    ``options`` (query parameters such as ``sslmode``) are set. For SQLite only
    ``path`` is. ``password`` must never be printed, logged or stored.
    """

    kind: Literal["postgresql", "sqlite"]
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str | None = None
    database: str = ""
    options: tuple[tuple[str, str], ...] = ()
    path: Path | None = None

    def render(self, *, with_password: bool = True) -> str:
        """Return the URL as text; ``with_password=False`` leaves the password out."""
        if self.kind == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        auth = quote(self.user, safe="") if self.user else ""
        shown = None
        if self.password is not None:
            shown = quote(self.password, safe="") if with_password else "***"
        query = urlencode(self.options)
        if shown is not None and auth:
            auth = f"{auth}:{shown}"
        elif shown is not None:
            # Without a user name the password can only go in the query.
            query = f"{query}&password={shown}" if query else f"password={shown}"
        if auth:
            auth += "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?{query}" if query else ""
        database = quote(self.database, safe="")
        return f"postgresql://{auth}{host}:{self.port}/{database}{query}"

    def redacted(self) -> str:
        """Return the URL with the password replaced by ``***``."""
        return self.render(with_password=False)

    @property
    def sqlite_path(self) -> Path:
        if self.path is None:
            raise DatabaseUrlError("not a SQLite URL")
        return self.path

    def with_database(self, database: str) -> DatabaseUrl:
        """Return the URL of another database on the same PostgreSQL server."""
        return replace(self, database=database)

    def with_server(self, host: str, port: int) -> DatabaseUrl:
        """Return the URL of the same database on another server (a cluster fork)."""
        return replace(self, host=host, port=port)

    def libpq_conninfo(self, *, database: str | None = None) -> str:
        """Return a libpq key=value string without the password, for client tools.

        Tools get the password through the ``PGPASSWORD`` environment variable
        (see ``libpq_env``), so it never appears on a command line.
        """
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": database if database is not None else self.database,
            **dict(self.options),
        }
        return " ".join(
            f"{key}={_conninfo_quote(value)}" for key, value in parts.items() if value
        )

    def libpq_env(self) -> dict[str, str]:
        """Return the environment a libpq tool needs for this URL's password."""
        return {"PGPASSWORD": self.password} if self.password is not None else {}


def _conninfo_quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def parse_url(text: str) -> DatabaseUrl:
    """Parse a PostgreSQL or SQLite URL, or a bare SQLite file path.

    Raises DatabaseUrlError for any other scheme or a URL without a database.
    """
    stripped = text.strip()
    if stripped.startswith("sqlite:"):
        return _parse_sqlite(stripped)
    if "://" not in stripped and stripped.lower().endswith(SQLITE_SUFFIXES):
        return DatabaseUrl(kind="sqlite", path=Path(stripped).expanduser().resolve())
    scheme = stripped.split("://", 1)[0].lower() if "://" in stripped else ""
    if scheme not in ("postgresql", "postgres"):
        raise DatabaseUrlError(
            f"unsupported database URL {redacted(stripped)!r}",
            hint=_unsupported_hint(stripped),
        )
    return _parse_postgresql(stripped)


def _unsupported_hint(text: str) -> str:
    usage = (
        "use postgresql://user@host:port/dbname, sqlite:///path/file.db "
        "or a path ending in .db, .sqlite or .sqlite3"
    )
    if "://" not in text and "=" in text:
        return (
            f"libpq keyword/value strings (host=... dbname=...) are not supported: "
            f"{usage}"
        )
    return usage


def _parse_sqlite(text: str) -> DatabaseUrl:
    rest = text.removeprefix("sqlite:")
    if not rest.startswith("///") or len(rest) <= 3:
        raise DatabaseUrlError(
            f"invalid SQLite URL {redacted(text)!r}",
            hint="write sqlite:///relative/file.db or sqlite:////absolute/file.db",
        )
    path = Path(unquote(rest[3:])).expanduser().resolve()
    return DatabaseUrl(kind="sqlite", path=path)


def _parse_postgresql(text: str) -> DatabaseUrl:
    try:
        parts = urlsplit(text)
        port = parts.port or 5432
    except ValueError as exc:
        raise DatabaseUrlError(
            f"invalid host or port in database URL {redacted(text)!r}",
            hint="write the port as a number, such as :5432, and an IPv6 host "
            "in brackets, such as [::1]",
        ) from exc
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise DatabaseUrlError(
            f"database URL {redacted(text)!r} names no database",
            hint="add the database name: postgresql://user@host:5432/dbname",
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = unquote(parts.password) if parts.password is not None else None
    # libpq also reads the password from ?password=; keep it out of options so
    # that it reaches tools through PGPASSWORD, never a command line.
    for key, value in query:
        if key == "password" and password is None:
            password = value
    options = tuple(sorted((k, v) for k, v in query if k != "password"))
    return DatabaseUrl(
        kind="postgresql",
        host=parts.hostname or "localhost",
        port=port,
        user=unquote(parts.username or ""),
        password=password,
        database=database,
        options=options,
    )


def redacted(url: str | DatabaseUrl) -> str:
    """Return the URL as text without its password.

    Text that does not parse as a URL, such as a libpq keyword/value string, is
    returned with URL passwords and ``password=`` values (quoted or not) masked.
    """
    if isinstance(url, DatabaseUrl):
        return url.redacted()
    text = _QUOTED_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return redact(text)
    if password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        text = parts._replace(netloc=f"{user}:***@{netloc}").geturl()
    return redact(text)


def is_local_host(url: DatabaseUrl) -> bool:
    """Return whether a PostgreSQL URL names a server on this machine."""
    return url.host in ("127.0.0.1", "localhost", "::1") or url.host.startswith("/")


def connect_postgresql(
    url: DatabaseUrl, *, autocommit: bool = False, database: str | None = None
):
    """Open a psycopg 3 connection to ``url`` (or to ``database`` on its server).

    Raises DatabaseUrlError, with the password removed from the message, when
    the server cannot be reached or rejects the login.
    """
    import psycopg

    target = url if database is None else url.with_database(database)
    try:
        return psycopg.connect(
            target.render(),
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_S,
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUrlError(
            f"cannot connect to {target.redacted()}: {_first_line(exc)}",
            hint="check the host, port, user and database name, and that the "
            "server is running",
        ) from None


def connect_sqlite(url: DatabaseUrl, *, must_exist: bool = True) -> sqlite3.Connection:
    """Open a SQLite connection; raises DatabaseUrlError when the file is missing."""
    path = url.sqlite_path
    if must_exist and not path.is_file():
        raise DatabaseUrlError(
            f"SQLite database {path} not found",
            hint="check the path, or create the database first",
        )
    return sqlite3.connect(path, isolation_level=None)


def connect(url: DatabaseUrl, *, autocommit: bool = False):
    """Open a connection of the URL's kind (psycopg for PostgreSQL, sqlite3 for SQLite).

    SQLite connections run in autocommit mode (``isolation_level=None``), so the
    caller issues BEGIN and COMMIT itself.
    """
    if url.kind == "sqlite":
        return connect_sqlite(url)
    return connect_postgresql(url, autocommit=autocommit)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)

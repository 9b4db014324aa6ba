"""Engines for SQLite (embedded default) and PostgreSQL, and the schema migrations.

The only place that turns a database URL into connections. Async engines serve the running
process (aiosqlite, psycopg 3); a short-lived sync engine applies Alembic migrations. Also what
every store module shares to write many rows (`insert_for`, `slices`) and to run hot-path
statements on the driver itself (`Sql`, `driver_rows`, `driver_write`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from legato.errors import Conflict, InvalidInput

#: Most ids in one IN (...) list (well under SQLite's variable limit).
SLICE = 500


def slices(items: Sequence[Any], size: int = SLICE) -> Iterable[Sequence[Any]]:
    """`items` in consecutive parts of at most `size` (one statement each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_for(conn: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT of the connection's dialect, which knows ON CONFLICT."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


MIGRATIONS = Path(__file__).parent / "migrations"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _json_loads(value: Any) -> Any:
    # A column declared JSON has NUMERIC affinity in SQLite: a document that is a bare number
    # (a computed trait's `55`) is stored, and read back, as a number rather than as text.
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def driver_urls(url: str) -> tuple[sa.URL, sa.URL]:
    """The (async, sync) driver URLs for a user-facing database URL."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(f"not a database URL: {url!r}", field="database_url") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite"), parsed.set(drivername="sqlite+pysqlite")
    if backend in {"postgresql", "postgres"}:
        return (
            parsed.set(drivername="postgresql+psycopg_async"),
            parsed.set(drivername="postgresql+psycopg"),
        )
    raise InvalidInput(
        f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://...",
        field="database_url",
    )


class Database:
    """One database: an async engine, its dialect, and its migrations."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10):
        self.url = url
        async_url, self._sync_url = driver_urls(url)
        self.is_sqlite = async_url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}
        if self.is_sqlite:
            # WAL lets readers run beside the one writer; busy_timeout queues writers.
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        self.engine: AsyncEngine = create_async_engine(async_url, **kwargs)
        if self.is_sqlite:
            self._install_sqlite_pragmas(self.engine.sync_engine, sqlite_synchronous)

    @staticmethod
    def _install_sqlite_pragmas(engine: sa.Engine, synchronous: str) -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise InvalidInput(f"sqlite_synchronous must be NORMAL or FULL, not {synchronous!r}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self.is_sqlite else "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success, rolled back on error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (autobegin; nothing to commit)."""
        async with self.engine.connect() as conn:
            yield conn

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision` (blocking; call before serving)."""
        sync_engine = sa.create_engine(self._sync_url)
        try:
            with sync_engine.begin() as conn:
                if self.is_sqlite:
                    # 16 KB pages: a quarter fewer CPU per ingested event than 4 KB (fewer
                    # page writes to the WAL). Applies when the file is created, else ignored.
                    conn.exec_driver_sql("PRAGMA page_size = 16384")
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
        finally:
            sync_engine.dispose()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


class ProcessLock:
    """Holds an exclusive lock file beside a SQLite database: one engine process at a time.

    SQLite has one writer; two `legato serve` processes on one file would both run the
    pipeline and the timers. The OS drops the lock if the process dies, even by kill -9.
    """

    def __init__(self, database_url: str):
        path = make_url(database_url).database or ""
        self.path = Path(path + ".lock") if path and path != ":memory:" else None
        self._file: TextIO | None = None

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock, or raise Conflict naming the process that holds it."""
        if self.path is None:
            return
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise Conflict(
                f"{self.path.with_suffix('')} is in use by {holder}: on SQLite only one "
                "`legato serve` may run; use PostgreSQL to run several processes",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let another process take the lock."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


# --- statements run by the driver itself -----------------------------------------------------
# The hot paths (pipeline stages, timers, delivery) send their statements to the database driver
# on the connection's transaction: SQLAlchemy's work around one statement (result metadata,
# cursor adaption, and four thread hops with aiosqlite) costs ~300 µs of CPU, measured, more
# than most of these statements themselves. Lists of values travel as ONE JSON parameter
# (`json_each` on SQLite, `jsonb_array_elements` on PostgreSQL): psycopg adapts a Python list
# element by element in Python (2.9 ms for two lists of 500 against 0.2 ms as one JSON text).


class Sql(NamedTuple):
    """One statement in each driver's parameter style: `?` (sqlite3) and `%s` (psycopg)."""

    sqlite: str
    postgresql: str

    @classmethod
    def same(cls, text: str) -> Sql:
        """A statement both databases read alike, written with `?` placeholders."""
        return cls(text, text.replace("?", "%s"))


async def driver_rows(
    conn: AsyncConnection, statement: Sql, parameters: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The rows of `statement`, run by the driver on `conn`'s transaction."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    postgres = conn.dialect.name == "postgresql"
    text = statement.postgresql if postgres else statement.sqlite
    try:
        if postgres:
            cursor = await driver.execute(text, parameters)
            return list(await cursor.fetchall())
        return list(await driver.execute_fetchall(text, parameters))
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _translated(conn, text, parameters, exc) from exc


async def driver_write(
    conn: AsyncConnection, statement: Sql, parameters: Sequence[Any], *, many: bool = False
) -> int:
    """Run a writing `statement` (once per row of `parameters` if `many`) by the driver, on
    `conn`'s transaction; returns the number of rows it changed."""
    driver: Any = (await conn.get_raw_connection()).driver_connection
    postgres = conn.dialect.name == "postgresql"
    text = statement.postgresql if postgres else statement.sqlite
    try:
        if postgres:
            cursor = driver.cursor()
            if many:
                await cursor.executemany(text, parameters)
            else:
                await cursor.execute(text, parameters)
        elif many:
            cursor = await driver.executemany(text, parameters)
        else:
            cursor = await driver.execute(text, parameters)
        return int(cursor.rowcount)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _translated(conn, text, parameters, exc) from exc


def _translated(
    conn: AsyncConnection, text: str, parameters: Sequence[Any], exc: Exception
) -> sa.exc.StatementError:
    # The driver's error as SQLAlchemy raises it, so that callers (`store.log.classify_failure`)
    # tell races, broken databases and bad events apart the same way.
    return sa.exc.DBAPIError.instance(
        text, parameters, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True
    )


def json_text(value: object) -> str:
    """`value` as one JSON parameter."""
    return orjson.dumps(value).decode()


def json_value(value: Any) -> Any:
    """A JSON column read by the driver (text; SQLite gives a bare number back as a number)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value

"""Database engines for the audit, key and history stores (SQLite or PostgreSQL), and migrations.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit is on disk before it returns, so an
audit record whose score was answered survives a power loss or an OS crash, not only a crash of
the process (``NORMAL`` may lose the last commits then; FULL costs one fsync per commit, ~0.2 ms
median here). SQLAlchemy, not the ``sqlite3`` driver,
emits BEGIN, so a write transaction can take the write lock up front (``BEGIN IMMEDIATE``) and
never fails half-way with "database is locked" when several threads or processes write.
PostgreSQL goes through psycopg 3. The schema lives in Alembic migrations shipped inside this
package (``serving/store/migrations``); :func:`upgrade` runs them without any ``alembic.ini``.
"""

from __future__ import annotations

import fcntl
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 10_000
# Pages of a new SQLite file (an existing file keeps its own until a VACUUM). An audit record is
# ~2 KB, so a 4 KB page (SQLite's default) holds one or two of them; 16 KB pages hold seven. A
# 1,000-score append onto a 300,000-record trail then writes 598 WAL frames instead of 1,870 and
# took 0.87 of the CPU and wall time (bench/bench_audit_append.py --compare page-size).
SQLITE_PAGE_SIZE = 16_384
SQLITE_BEGIN_OPTION = "arscore_sqlite_begin"
# Keys of pg_advisory_xact_lock: one per kind of serialized writer (arbitrary, stable constants).
PG_LOCK_MIGRATIONS = 7_240_001
PG_LOCK_HISTORY = 7_240_002


def normalize_url(url: str) -> str:
    """The URL to use: ``postgresql://`` and ``postgres://`` go through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(engine: Engine | Connection) -> bool:
    """Whether the engine (or connection) talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, **kwargs: Any) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, configured for durable concurrent writes.

    SQLite: the parent directory of the file is created; every connection gets WAL,
    ``synchronous=FULL``, a busy timeout and foreign keys. PostgreSQL: psycopg 3 with
    pre-ping, so a restarted server costs one retry instead of an error.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    database = parsed.database or ""
    on_disk = database and database != ":memory:" and not database.startswith("file:")
    if on_disk:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    _configure_sqlite(engine, busy_timeout_ms)
    if on_disk:
        _WRITE_LOCKS[engine] = (Path(f"{Path(database).expanduser()}.writelock"), busy_timeout_ms)
    return engine


def _switch_to_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Set WAL, retrying while another connection holds the lock: SQLite does not call its busy
    handler for a journal-mode change, so concurrent first connections to a new file can see
    'database is locked' at once."""
    import sqlite3

    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, see _on_begin
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")  # only a new file's
            _switch_to_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, tuple[Path, int]] = weakref.WeakKeyDictionary()
_LOCK_POLL_SECONDS = (0.0002, 0.002)


@contextmanager
def _writer_turn(engine: Engine) -> Iterator[None]:
    """Wait for this SQLite file's write turn on an advisory file lock (``NAME.writelock``).

    Writers in other processes (``arscore serve --workers N``, the CLI) otherwise meet in
    SQLite's busy handler, which sleeps 1 to 100 ms between retries and decided the p99 of
    concurrent scoring with two workers. Here a waiter polls every 0.2 to 2 ms; after the busy
    timeout it goes on to ``BEGIN IMMEDIATE``, whose own timeout then answers."""
    found = _WRITE_LOCKS.get(engine)
    if found is None:
        yield
        return
    path, timeout_ms = found
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout_ms / 1000
        pause, cap = _LOCK_POLL_SECONDS
        locked = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 2, cap)
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def write_transaction(engine: Engine, pg_lock: int | None = None) -> Iterator[Connection]:
    """A transaction that writes: ``BEGIN IMMEDIATE`` on SQLite (the write lock is taken before
    the first read, so read-then-write cannot deadlock) after the file's write turn
    (``_writer_turn``), optionally a transaction-scoped advisory lock on PostgreSQL to serialize
    writers of one kind. Commits on success, rolls back on error."""
    with _writer_turn(engine), engine.connect() as connection:
        if is_sqlite(engine):
            connection = connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        with connection.begin():
            if pg_lock is not None and engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": pg_lock})
            yield connection


@contextmanager
def snapshot_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction whose reads all see one consistent snapshot of the database."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` built in code, pointing at the migrations shipped in this package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision`` (default: head) in one transaction.

    Safe to call from every worker at start-up: concurrent callers are serialized (SQLite write
    lock, PostgreSQL advisory lock) and the later ones find the schema already at head.
    """
    from alembic import command

    with write_transaction(engine, pg_lock=PG_LOCK_MIGRATIONS) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Run the migrations down to ``revision`` (``base`` drops every arscore table)."""
    from alembic import command

    with write_transaction(engine, pg_lock=PG_LOCK_MIGRATIONS) as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

"""Shared fixtures of the serving tests: a migrated database on SQLite and on PostgreSQL.

Every test that takes ``db_engine`` (or ``db_url``) runs twice: on a SQLite file under tmp_path
and on PostgreSQL at 127.0.0.1:5432, in a uniquely named database created for the session and
dropped at its end, where each test gets a fresh schema of its own (dropped after the test).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from serving.store.engine import is_sqlite, make_engine, upgrade

PG_SERVER = os.environ.get("ARSCORE_TEST_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")
SQLITE_GUARD_TRIGGERS = (
    "audit_records_no_update",
    "audit_records_no_delete",
    "audit_chain_head_forward_only",
    "audit_purge_anchors_no_delete",
)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server URL. Unreachable: a failure when the environment variable ``CI`` is
    set (CI must never pass with the PostgreSQL tests skipped), else a skip naming why."""
    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {PG_SERVER} is unreachable ({exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(f"{message}; CI runs it")
    return PG_SERVER


@pytest.fixture(scope="session")
def postgres_database(postgres_server: str) -> Iterator[str]:
    """A uniquely named database for this test session, dropped at its end. Its commits do not
    wait for the WAL flush (synchronous_commit = off): no test here simulates a crash, and 1,600
    fsyncs would dominate the concurrency tests on a busy disk."""
    name = f"arscore_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """An empty PostgreSQL database of one's own: a fresh schema of the session's database,
    first on the search_path of every connection made with the URL (so child processes and
    the CLI see it too). A schema costs milliseconds where CREATE/DROP DATABASE costs ~0.5 s."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres_database}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The URL of an empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/arscore.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


class FakeClock:
    """A settable clock for the stores: starts at ``start`` and moves only when told."""

    def __init__(self, start: datetime = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@contextmanager
def tampering(engine: Engine) -> Iterator[Connection]:
    """A transaction in which the append-only guards do not fire, the way an attacker with
    direct database access gets one: on SQLite, drop the triggers (anyone who can write the
    file can); on PostgreSQL, a superuser sets ``session_replication_role = replica``, which
    skips ordinary triggers for the session."""
    with engine.begin() as connection:
        if is_sqlite(engine):
            for trigger in SQLITE_GUARD_TRIGGERS:
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        else:
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        yield connection


def count_statements(engine: Engine, needle: str) -> list[str]:
    """Start recording the SQL statements that mention ``needle``; returns the live list."""
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _record(conn, cursor, statement, parameters, context, executemany) -> None:
        if needle.lower() in statement.lower():
            seen.append(statement)

    return seen


def sqlite_runs(engine: Engine, prefix: str) -> list[str]:
    """Start recording the statements starting with ``prefix`` that SQLite runs on the engine's
    new connections (it drops the pooled ones); returns the live list. Unlike
    ``count_statements`` this sees the driver's own cursors, and every run of a statement:
    sqlite3's trace callback fires once per row of an executemany."""
    seen: list[str] = []
    engine.dispose()

    @sa.event.listens_for(engine, "connect")
    def _trace(dbapi_connection, _record) -> None:
        dbapi_connection.set_trace_callback(
            lambda sql: seen.append(sql) if sql.startswith(prefix) else None
        )

    return seen

"""Engines and migrations: SQLite settings, psycopg URLs, Alembic shipped in the package."""

from __future__ import annotations

import fcntl
import importlib.resources
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from serving.access import keys, users
from serving.audit import store as audit
from serving.audit import tables as audit_tables
from serving.history import ledger as history_ledger
from serving.history import tables as history_tables
from serving.store.engine import (
    SQLITE_PAGE_SIZE,
    alembic_config,
    current_revision,
    downgrade,
    make_engine,
    normalize_url,
    upgrade,
    write_transaction,
)
from serving.worklist import idempotency
from serving.worklist import store as worklist_store

ARSCORE_TABLES = {
    "audit_records",
    "audit_chain_head",
    "audit_purge_anchors",
    "api_keys",
    "history_claims",
    "history_transactions",
    "history_patient_ledger",
    "users",
    "write_off_requests",
    "idempotent_responses",
}


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrations_upgrade_fresh_database_creates_tables_at_head(db_url):
    engine = make_engine(db_url)

    upgrade(engine)

    assert set(sa.inspect(engine).get_table_names()) >= ARSCORE_TABLES
    assert current_revision(engine) == head_revision() == "0007"
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("history_transactions")}
    assert "history_transactions_covering" not in indexes  # dropped by 0005
    ledger = {i["name"] for i in sa.inspect(engine).get_indexes("history_patient_ledger")}
    assert ledger == {"history_patient_ledger_patient", "history_patient_ledger_claim"}
    trail = {i["name"] for i in sa.inspect(engine).get_indexes("audit_records")}
    assert "ix_audit_records_claim_id" not in trail  # dropped by 0006
    assert "ix_audit_records_created_at" in trail  # export and purge go by created_at
    engine.dispose()


def test_migrations_upgrade_twice_keeps_data(db_engine):
    _, token = keys.KeyStore(db_engine).create("admin")

    upgrade(db_engine)

    assert keys.KeyStore(db_engine).authenticate(token) is not None
    assert current_revision(db_engine) == head_revision()


def test_migrations_downgrade_to_base_then_upgrade_again(db_engine):
    downgrade(db_engine, "base")
    dropped = set(sa.inspect(db_engine).get_table_names())
    upgrade(db_engine)

    assert not dropped & ARSCORE_TABLES
    assert set(sa.inspect(db_engine).get_table_names()) >= ARSCORE_TABLES
    assert audit.AuditStore(db_engine).append([]) == []
    assert audit.AuditStore(db_engine).verify().ok


def test_migrations_0006_drops_the_trail_claim_index_and_downgrade_restores_it(db_engine):
    store = audit.AuditStore(db_engine)
    store.append([audit.AuditEntry("score", "k", "scorer", "m", "1", "h", "p", "C1", {"x": 1})])

    def trail_indexes() -> set[str]:
        return {i["name"] for i in sa.inspect(db_engine).get_indexes("audit_records")}

    downgrade(db_engine, "0005")
    restored = trail_indexes()
    upgrade(db_engine)

    assert "ix_audit_records_claim_id" in restored
    assert "ix_audit_records_claim_id" not in trail_indexes()
    report = store.verify()
    assert report.ok and report.n_records == 1


def test_migrations_concurrent_upgrades_from_fresh_database_all_succeed(db_url):
    engines = [make_engine(db_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def migrate(engine) -> None:
        try:
            start.wait()
            upgrade(engine)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert current_revision(engines[0]) == head_revision()
    with engines[0].connect() as connection:
        heads = connection.execute(sa.text("SELECT count(*) FROM audit_chain_head")).scalar_one()
    assert heads == 1
    for engine in engines:
        engine.dispose()


def test_migrations_run_from_any_directory_without_alembic_ini(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite:///relative/arscore.db")

    upgrade(engine)

    assert (tmp_path / "relative" / "arscore.db").exists()
    assert not list(tmp_path.rglob("alembic.ini"))
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_migrations_shipped_as_package_resources_are_found():
    migrations = importlib.resources.files("serving.store.migrations")
    versions = importlib.resources.files("serving.store.migrations.versions")

    assert migrations.joinpath("env.py").is_file()
    assert any(entry.name.endswith("_initial.py") for entry in versions.iterdir())


@pytest.mark.parametrize(
    ("table", "module"),
    [
        (audit_tables.audit_records, audit_tables),
        (audit_tables.audit_chain_head, audit_tables),
        (audit_tables.audit_purge_anchors, audit_tables),
        (keys.api_keys, keys),
        (users.users, users),
        (worklist_store.account_actions, worklist_store),
        (worklist_store.write_off_requests, worklist_store),
        (idempotency.idempotent_responses, idempotency),
        (history_tables.history_claims, history_tables),
        (history_tables.history_transactions, history_tables),
        (history_ledger.history_patient_ledger, history_ledger),
    ],
    ids=lambda value: getattr(value, "name", ""),
)
def test_migrations_tables_match_the_stores_definitions(db_engine, table, module):
    reflected = {column["name"] for column in sa.inspect(db_engine).get_columns(table.name)}

    assert reflected == set(table.c.keys()), module.__name__


def test_make_engine_sqlite_sets_pragmas_and_creates_parent_dir(tmp_path):
    path = tmp_path / "nested" / "dir" / "arscore.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout_ms=1234)

    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "page_size")
        }

    assert path.parent.is_dir()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL: a commit is on disk before it returns
        "busy_timeout": 1234,
        "foreign_keys": 1,
        "page_size": SQLITE_PAGE_SIZE,  # a new file's
    }
    engine.dispose()


def test_make_engine_sqlite_keeps_an_existing_files_page_size(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # a file made before SQLITE_PAGE_SIZE, SQLite's default
        old.execute("PRAGMA page_size = 4096")
        old.execute("CREATE TABLE kept (x INTEGER)")
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)

    with write_transaction(engine) as connection:
        connection.exec_driver_sql("INSERT INTO kept VALUES (1)")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA page_size").scalar() == 4096
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("SELECT x FROM kept").scalar() == 1
        assert connection.exec_driver_sql("SELECT count(*) FROM audit_records").scalar() == 0
    engine.dispose()


def test_make_engine_postgres_urls_use_psycopg():
    for url in ("postgresql://u@h/db", "postgres://u@h/db"):
        assert normalize_url(url) == "postgresql+psycopg://u@h/db"
        assert make_engine(url).dialect.driver == "psycopg"
    assert normalize_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_write_transaction_sqlite_takes_the_write_lock_at_begin(tmp_path):
    url = f"sqlite:///{tmp_path}/lock.db"
    holder, waiter = make_engine(url), make_engine(url, busy_timeout_ms=50)
    upgrade(holder)

    with write_transaction(holder) as connection:
        connection.execute(sa.text("SELECT 1"))  # a read only, yet the write lock is held
        with pytest.raises(OperationalError, match="locked"), write_transaction(waiter):
            pass

    with write_transaction(waiter) as connection:  # free again after commit
        assert connection.execute(sa.text("SELECT count(*) FROM api_keys")).scalar_one() == 0
    holder.dispose()
    waiter.dispose()


def test_sqlite_writers_take_turns_on_the_file_lock_and_wait_for_release(tmp_path):
    url = f"sqlite:///{tmp_path}/turns.db"
    first, second = make_engine(url), make_engine(url)
    with first.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (writer TEXT)")
    order: list[str] = []
    inside = threading.Event()

    def slow_writer() -> None:
        with write_transaction(first) as connection:
            inside.set()
            time.sleep(0.3)
            connection.exec_driver_sql("INSERT INTO t VALUES ('first')")
            order.append("first")

    thread = threading.Thread(target=slow_writer)
    thread.start()
    inside.wait(5)
    started = time.monotonic()
    with write_transaction(second) as connection:
        waited = time.monotonic() - started
        connection.exec_driver_sql("INSERT INTO t VALUES ('second')")
        order.append("second")
    thread.join()

    assert order == ["first", "second"] and waited > 0.1
    assert (tmp_path / "turns.db.writelock").exists()
    with second.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar() == 2
    first.dispose()
    second.dispose()


def test_sqlite_write_turn_gives_up_after_the_busy_timeout(tmp_path):
    """A lock file held by someone who is not writing delays a writer by the busy timeout at
    most; the transaction then goes ahead on SQLite's own locking."""
    engine = make_engine(f"sqlite:///{tmp_path}/stuck.db", busy_timeout_ms=200)
    with open(tmp_path / "stuck.db.writelock", "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        with write_transaction(engine) as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        assert 0.15 < time.monotonic() - started < 5
    engine.dispose()

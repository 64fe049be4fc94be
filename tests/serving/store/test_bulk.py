"""Many rows through the driver: what SQLite's multi-row statements and one-row reads store and
read back equals SQLAlchemy's row-by-row statements, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from serving.store.bulk import ROWS_PER_STATEMENT, DriverInsert, DriverUpdate, fetch_rows
from serving.store.engine import make_engine
from tests.serving.conftest import sqlite_runs

metadata = sa.MetaData()
items = sa.Table(
    "bulk_items",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("day", sa.Date),
    sa.Column("cents", sa.BigInteger),
    sa.Column("count", sa.Integer),
    sa.Column("note", sa.String),
)
N_ROWS = 2 * ROWS_PER_STATEMENT + 1


def row(i: int, version: int = 0) -> dict:
    """Every kind of value: dates, big and negative integers, NULLs, quotes, non-ASCII text."""
    return {
        "key": f"K{i:05d}",
        "day": None if i % 7 == 0 else dt.date(2025, 1, 1) + dt.timedelta(days=i + version),
        "cents": None if i % 5 == 0 else (2**62 - i if i % 2 else -i) + version,
        "count": i % 3 + version,
        "note": None if i % 11 == 0 else f"n\"ote' {i} é 🙂 {version}",
    }


@pytest.fixture
def bulk_engine(db_engine):
    metadata.create_all(db_engine)
    yield db_engine
    metadata.drop_all(db_engine)


def stored(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(sa.select(items).order_by(items.c.key))]


def counted_psycopg_calls(monkeypatch) -> list[str]:
    """The COPY statements (up to their column list) and executemany calls psycopg's cursors make
    from now on, in order."""
    import psycopg

    calls: list[str] = []
    copy, executemany = psycopg.Cursor.copy, psycopg.Cursor.executemany

    def counted_copy(self, statement, *args, **kwargs):
        calls.append(str(statement).split(" (", 1)[0])
        return copy(self, statement, *args, **kwargs)

    def counted_executemany(self, query, params_seq, **kwargs):
        calls.append("executemany")
        return executemany(self, query, params_seq, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", counted_copy)
    monkeypatch.setattr(psycopg.Cursor, "executemany", counted_executemany)
    return calls


def test_driver_insert_stores_what_sqlalchemy_would(bulk_engine):
    rows = [row(i) for i in range(N_ROWS)]
    with bulk_engine.begin() as connection:
        DriverInsert(items, bulk_engine).execute(connection, rows)

    assert stored(bulk_engine) == [tuple(r.values()) for r in rows]


def test_driver_insert_of_some_columns_leaves_the_others_to_their_defaults(bulk_engine):
    with bulk_engine.begin() as connection:
        DriverInsert(items, bulk_engine, ["key", "count"]).execute(
            connection, [{"key": "A", "count": 3, "note": "not inserted"}]
        )

    assert stored(bulk_engine) == [("A", None, None, 3, None)]


def test_driver_insert_of_one_column(bulk_engine):
    with bulk_engine.begin() as connection:
        DriverInsert(items, bulk_engine, ["key"]).execute(connection, [{"key": "A"}, {"key": "B"}])

    assert stored(bulk_engine) == [("A", None, None, None, None), ("B", None, None, None, None)]


def test_driver_insert_on_postgresql_copies_the_rows(postgres_url, monkeypatch):
    """psycopg's executemany hands the GIL off per row: PostgreSQL gets the rows in one COPY."""
    engine = make_engine(postgres_url)
    metadata.create_all(engine)
    calls = counted_psycopg_calls(monkeypatch)
    rows = [row(i) for i in range(N_ROWS)]
    with engine.begin() as connection:
        DriverInsert(items, engine).execute(connection, rows)
    monkeypatch.undo()

    assert calls == ["COPY bulk_items"]
    assert stored(engine) == [tuple(r.values()) for r in rows]
    engine.dispose()


def test_driver_update_changes_exactly_the_rows_sent(bulk_engine):
    with bulk_engine.begin() as connection:
        connection.execute(sa.insert(items), [row(i) for i in range(N_ROWS)])
    changed = [row(i, version=1) for i in range(0, N_ROWS, 2)]
    with bulk_engine.begin() as connection:
        DriverUpdate(items, bulk_engine, "key").execute(connection, changed)

    expected = [tuple(row(i, version=1 - i % 2).values()) for i in range(N_ROWS)]
    assert stored(bulk_engine) == expected


def test_driver_update_on_sqlite_runs_one_statement_per_500_rows(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(items), [row(i) for i in range(N_ROWS)])
    updates = sqlite_runs(engine, "UPDATE")
    with engine.begin() as connection:
        DriverUpdate(items, engine, "key").execute(connection, [row(i, 2) for i in range(N_ROWS)])

    assert len(updates) == 3
    assert stored(engine) == [tuple(row(i, 2).values()) for i in range(N_ROWS)]


def test_driver_update_on_postgresql_copies_then_updates_once(postgres_url, monkeypatch):
    """psycopg's executemany hands the GIL off per row: the rows go in one COPY to a staging
    table, and one UPDATE writes them."""
    engine = make_engine(postgres_url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(items), [row(i) for i in range(N_ROWS)])
    calls = counted_psycopg_calls(monkeypatch)
    updates: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def counted_update(connection, cursor, statement, *args):
        if statement.startswith("UPDATE"):
            updates.append(statement)

    with engine.begin() as connection:
        DriverUpdate(items, engine, "key").execute(connection, [row(i, 2) for i in range(N_ROWS)])
    monkeypatch.undo()

    assert calls == ["COPY bulk_items_staged_update"]
    assert len(updates) == 1
    assert stored(engine) == [tuple(row(i, 2).values()) for i in range(N_ROWS)]
    engine.dispose()


def test_driver_update_on_postgresql_twice_in_one_transaction_and_after_a_rollback(postgres_url):
    """The staging table is made and dropped by each call, and goes with a rolled-back one."""
    engine = make_engine(postgres_url)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(items), [row(i) for i in range(3)])
    update = DriverUpdate(items, engine, "key")
    with engine.begin() as connection:
        update.execute(connection, [row(0, 1)])
        update.execute(connection, [row(1, 1)])
    with pytest.raises(RuntimeError), engine.begin() as connection:
        update.execute(connection, [row(2, 5)])
        raise RuntimeError("rolled back")
    with engine.begin() as connection:
        update.execute(connection, [row(2, 1)])

    assert stored(engine) == [tuple(row(i, 1).values()) for i in range(3)]
    with engine.connect() as connection:
        staged = connection.execute(sa.text("SELECT to_regclass('bulk_items_staged_update')"))
        assert staged.scalar_one() is None
    engine.dispose()


def test_fetch_rows_equals_sqlalchemys_rows(bulk_engine):
    with bulk_engine.begin() as connection:
        connection.execute(sa.insert(items), [row(i) for i in range(N_ROWS)])
    query = sa.select(items).where(items.c.count < 2).order_by(items.c.key)
    with bulk_engine.connect() as connection:
        plain = [tuple(r) for r in connection.execute(query)]
        found = fetch_rows(connection, query)

    assert sorted(found, key=lambda r: r[0]) == plain
    assert len(plain) > ROWS_PER_STATEMENT
    assert any(type(r[1]) is dt.date for r in found) and any(r[2] == 2**62 - 1 for r in found)


def test_fetch_rows_on_sqlite_reads_one_row(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(items), [row(i) for i in range(10)])
    selects = sqlite_runs(engine, "SELECT")
    with engine.connect() as connection:
        found = fetch_rows(connection, sa.select(items.c.key, items.c.day))

    assert len(found) == 10
    assert len(selects) == 1 and "json_group_array" in selects[0]


def test_fetch_rows_on_sqlite_refuses_columns_json_would_round(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    with engine.connect() as connection, pytest.raises(TypeError, match="ratio"):
        fetch_rows(connection, sa.select(sa.literal(0.1, sa.Float).label("ratio")))


def test_fetch_rows_of_no_rows_is_empty(bulk_engine):
    with bulk_engine.connect() as connection:
        assert fetch_rows(connection, sa.select(items)) == []


def test_driver_insert_keeps_few_statement_texts(tmp_path):
    """Every batch size up to 500 may occur; only the last few texts are kept."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    inserter = DriverInsert(items, engine)

    texts = [inserter._statement(n) for n in range(1, 41)]

    assert [text.count("(?, ?, ?, ?, ?)") for text in texts] == list(range(1, 41))
    assert 0 < len(inserter._multirow_sql) <= 16

"""Many rows through the driver: multi-row INSERTs and UPDATEs, and reads in one step on SQLite.

The sqlite3 module lets go of the GIL around every step of a statement: once per row for an
executemany, and once per row fetched. A server worker runs its requests in threads, so each
time another busy thread of the worker then keeps the GIL for up to the switch interval (5 ms).
Inside a write transaction that holds the file's write lock, which every worker waits for, a
1,000-row executemany took ~600 ms instead of ~6. Here SQLite gets a few statements of many rows
and answers a read in one row (a JSON array of the rows). On PostgreSQL (psycopg) inserts go in
one COPY and updates in one COPY to a staging table and one UPDATE from it (psycopg's executemany
hands the GIL off per row too), while reads stay as they were: psycopg reads every row of a result
at once.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)

from serving.store.engine import is_sqlite

ROWS_PER_STATEMENT = 500  # rows per multi-row statement
_JSON_EXACT_TYPES = (Integer, String, Date)
_KEPT_STATEMENTS = 16  # multi-row INSERT texts kept per DriverInsert


class DriverInsert:
    """An INSERT of many rows (dicts by column name) into ``table``'s ``columns`` (default: all)
    through the driver's own cursor, with SQLAlchemy's SQL text and bind processing for the
    dialect (SQLite's DATETIME and DATE text, say). SQLAlchemy's own executemany builds and
    processes a parameter dict per row: about as much CPU again as the driver's insert, for a
    1,000-score batch.

    On SQLite the rows go in multi-row ``INSERT ... VALUES (...), (...)`` statements of up to
    ``ROWS_PER_STATEMENT`` rows. The sqlite3 module lets go of the GIL around every step, and
    executemany steps once per row: while the file's write lock was held, each step handed the
    GIL to another busy thread of the process for up to 5 ms, and 1,000 audit rows took ~600 ms
    instead of ~6 (``tests/serving/audit/test_audit.py`` counts the steps). On PostgreSQL (psycopg)
    they go in one ``COPY ... FROM STDIN``: psycopg's executemany hands the GIL off per row too
    (multi-row INSERTs of 7,000 parameters cost more than that alone)."""

    def __init__(self, table: Table, engine: Engine, columns: Sequence[str] | None = None):
        names = [c.name for c in table.columns] if columns is None else list(columns)
        compiled = insert(table).compile(dialect=engine.dialect, column_keys=names)
        self.sql = compiled.string
        self.names = list(compiled.positiontup or names)
        self.postgres = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self.positional = compiled.positiontup is not None or self.postgres
        self.multirow = is_sqlite(engine) and self.positional and " VALUES (" in self.sql
        if self.postgres:
            quote = engine.dialect.identifier_preparer.quote
            listed = ", ".join(quote(name) for name in self.names)
            self._copy_sql = f"COPY {quote(table.name)} ({listed}) FROM STDIN"
        if self.multirow:
            head, group = self.sql.rsplit(" VALUES ", 1)
            self._multirow_parts = (f"{head} VALUES ", group)
        self._multirow_sql: dict[int, str] = {}
        dialect = engine.dialect
        self.processors = {
            c.name: processor
            for c in table.columns
            if c.name in self.names
            and (processor := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self.getter: Callable[[dict[str, Any]], Any] = (
            operator.itemgetter(*self.names)
            if len(self.names) > 1
            else lambda row, name=self.names[0]: (row[name],)
        )
        self.processed_positions = [
            (position, name) for position, name in enumerate(self.names) if name in self.processors
        ]

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert the rows (dicts by column name) in the connection's transaction."""
        if not rows:
            return
        driver = connection.connection.driver_connection
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            parameters = self._parameters(rows)
            if self.postgres:
                with cursor.copy(self._copy_sql) as copy:
                    for row in parameters:
                        copy.write_row(row)
                return
            if not self.multirow:
                cursor.executemany(self.sql, parameters)
                return
            per_statement = self._rows_per_statement(driver)
            for start in range(0, len(parameters), per_statement):
                chunk = parameters[start : start + per_statement]
                flat = [value for row in chunk for value in row]
                cursor.execute(self._statement(len(chunk)), flat)
        finally:
            cursor.close()

    def _rows_per_statement(self, driver: Any) -> int:
        """Rows per multi-row INSERT: ``ROWS_PER_STATEMENT``, fewer if this SQLite build allows
        fewer bound variables per statement."""
        limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return max(1, min(ROWS_PER_STATEMENT, limit // len(self.names)))

    def _statement(self, n_rows: int) -> str:
        """The multi-row INSERT of ``n_rows`` rows. The texts of the last sizes used are kept (the
        driver caches a compiled statement by its text); at most ``_KEPT_STATEMENTS`` of them,
        since every size up to ``ROWS_PER_STATEMENT`` may occur (the 500-row text is ~23 KB)."""
        sql = self._multirow_sql.get(n_rows)
        if sql is None:
            if len(self._multirow_sql) >= _KEPT_STATEMENTS:
                self._multirow_sql.clear()
            head, group = self._multirow_parts
            sql = self._multirow_sql[n_rows] = head + ", ".join([group] * n_rows)
        return sql

    def _parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        """The driver's parameters: a tuple per row in the statement's order (named drivers: a
        dict), bind-processed; each distinct value of a processed column is processed once (an
        audit batch shares its created_at)."""
        processors = self.processors
        processed: dict[tuple[str, Any], Any] = {}

        def bound(name: str, value: Any) -> Any:
            key = (name, value)
            if key not in processed:
                processed[key] = processors[name](value)
            return processed[key]

        if not self.positional:
            if not processors:
                return rows
            return [{**row, **{n: bound(n, row[n]) for n in processors}} for row in rows]
        values = list(map(self.getter, rows))
        for position, name in self.processed_positions:
            for i, row_values in enumerate(values):
                row_values = list(row_values)
                row_values[position] = bound(name, row_values[position])
                values[i] = row_values
        return values


class DriverUpdate:
    """An UPDATE of many rows (dicts by column name, every column of ``table``) by ``key``.

    SQLite (3.33 or newer): ``UPDATE ... FROM (VALUES (...), (...))`` statements of up to
    ``ROWS_PER_STATEMENT`` rows, one step each, with ``DriverInsert``'s bind processing.
    PostgreSQL (psycopg): the rows are copied (``DriverInsert``'s COPY) into a temporary staging
    table shaped like ``table``, made for the call and dropped after it (or with the transaction),
    and one ``UPDATE ... FROM`` it writes them: four statements whatever the number of rows.
    Elsewhere: SQLAlchemy's executemany of one UPDATE per row."""

    def __init__(self, table: Table, engine: Engine, key: str):
        self.table, self.key = table, key
        self.values = DriverInsert(table, engine)
        self.sqlite = (
            is_sqlite(engine) and self.values.multirow and sqlite3.sqlite_version_info >= (3, 33, 0)
        )
        preparer = engine.dialect.identifier_preparer
        quote = preparer.quote
        names = self.values.names
        assignments = ", ".join(
            f"{quote(name)} = v.column{number}"
            for number, name in enumerate(names, 1)
            if name != key
        )
        self._head = f"UPDATE {quote(table.name)} SET {assignments} FROM (VALUES "
        self._tail = (
            f") AS v WHERE {quote(table.name)}.{quote(key)} = v.column{names.index(key) + 1}"
        )
        self._group = "(" + ", ".join(["?"] * len(names)) + ")"
        self._staging: DriverInsert | None = None
        if self.values.postgres:
            staging = table.to_metadata(MetaData(), name=f"{table.name}_staged_update")
            self._staging = DriverInsert(staging, engine, names)
            target, source = preparer.format_table(table), quote(staging.name)
            copied = ", ".join(f"{quote(name)} = s.{quote(name)}" for name in names if name != key)
            self._pg_sql = (
                f"CREATE TEMPORARY TABLE {source} (LIKE {target}) ON COMMIT DROP",
                f"UPDATE {target} SET {copied} FROM {source} AS s "
                f"WHERE {target}.{quote(key)} = s.{quote(key)}",
                f"DROP TABLE {source}",
            )

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """Update the rows (found by ``key``) in the connection's transaction."""
        if not rows:
            return
        if self._staging is not None:
            create, update_sql, drop = self._pg_sql
            connection.exec_driver_sql(create)
            self._staging.execute(connection, rows)
            connection.exec_driver_sql(update_sql)
            connection.exec_driver_sql(drop)
            return
        if not self.sqlite:
            column = self.table.c[self.key]
            statement = update(self.table).where(column == bindparam(f"key_{self.key}"))
            connection.execute(
                statement,
                [
                    {f"key_{self.key}": row[self.key]}
                    | {k: v for k, v in row.items() if k != self.key}
                    for row in rows
                ],
            )
            return
        driver = connection.connection.driver_connection
        cursor = driver.cursor()  # type: ignore[union-attr]
        try:
            parameters = self.values._parameters(rows)
            per_statement = self.values._rows_per_statement(driver)
            for start in range(0, len(parameters), per_statement):
                chunk = parameters[start : start + per_statement]
                sql = self._head + ", ".join([self._group] * len(chunk)) + self._tail
                cursor.execute(sql, [value for row in chunk for value in row])
        finally:
            cursor.close()


def fetch_rows(connection: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of ``query`` as tuples, with SQLAlchemy's values (dates as ``date``).

    On SQLite they come in one step, as one row holding the JSON array of the rows: the sqlite3
    module lets go of the GIL at every row it steps to, and another busy thread of the process
    then keeps it for up to the switch interval (5 ms) each time, inside a write lock that every
    worker waits for. Only integer, text and date columns are allowed, which JSON holds exactly
    (SQLite writes a REAL with 15 significant digits)."""
    if not is_sqlite(connection):
        return [tuple(row) for row in connection.execute(query)]
    rows_of = query.subquery()
    columns = list(rows_of.c)
    inexact = [c.name for c in columns if not isinstance(c.type, _JSON_EXACT_TYPES)]
    if inexact:
        raise TypeError(f"fetch_rows: column(s) {', '.join(inexact)} are not exact in JSON")
    one_row = select(func.json_group_array(func.json_array(*columns))).select_from(rows_of)
    rows = orjson.loads(connection.execute(one_row).scalar_one())
    dialect = connection.dialect
    processors = [
        (position, processor)
        for position, c in enumerate(columns)
        if (processor := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
    ]
    for row in rows:
        for position, processor in processors:
            row[position] = processor(row[position])
    return [tuple(row) for row in rows]

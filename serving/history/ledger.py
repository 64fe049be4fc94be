"""The patient ledger: what each stored claim adds to its patient's history features, as rows.

Scoring needs five patient-level values (``serving.scoring.online_snapshot.OtherClaims``) of the
patient's *other* claims as known at an as-of date. Reading every stored transaction of every
patient in a request for them cost ~14 rows per claim; the ledger keeps one row per stored claim
(its billing: ``billed`` 1 on the billed date, and a self-pay claim's total charge moved to the
patient) and one per transaction that adds something (``online_features.patient_deltas``: a
patient payment, a transfer, a bad-debt adjustment). ``other_claims_totals`` then answers a whole
request with one aggregate query; amounts are integer cents, so the sums are exact and equal
``serving.scoring.online_snapshot.other_claims`` over the stored records
(``tests/serving/history/test_ledger.py``).

``HistoryStore.upsert`` calls ``refresh_ledger`` in its write transaction for every claim it
inserted, changed or gave new transactions, so the ledger never disagrees with the history.
Migration 0005 created the table with an index on (patient_key, date) that carries the other
columns (SQLite answers from the index alone) and one on claim_id for the refreshes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from serving.history.tables import IN_CHUNK, HistoryStoreUnavailable, chunks
from serving.scoring.records import OtherClaims
from serving.store.engine import is_sqlite, snapshot_transaction

history_patient_ledger = sa.Table(
    "history_patient_ledger",
    sa.MetaData(),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("patient_key", sa.String(64), nullable=False),
    sa.Column("claim_id", sa.String, nullable=False),
    sa.Column("date", sa.Date, nullable=False),
    sa.Column("billed", sa.Integer, nullable=False),
    sa.Column("patient_paid_cents", sa.BigInteger, nullable=False),
    sa.Column("to_patient_cents", sa.BigInteger, nullable=False),
    sa.Column("bad_debts", sa.Integer, nullable=False),
)
LEDGER_COLUMNS = (
    "patient_key, claim_id, date, billed, patient_paid_cents, to_patient_cents, bad_debts"
)
# The ledger rows of the claims in {claims}: a billing row per claim, then a row per transaction
# that adds something. The WHERE keeps only those, so amount_cents is not NULL where it is read.
LEDGER_ROWS_SQL = """
SELECT patient_key, claim_id, billed_date, 1, 0,
    CASE WHEN payer_type = 'self_pay' THEN total_charge_cents ELSE 0 END, 0
FROM history_claims WHERE {claims}
UNION ALL
SELECT c.patient_key, t.claim_id, t.date, 0,
    CASE WHEN t.type = 'payment' THEN t.amount_cents ELSE 0 END,
    CASE WHEN t.type <> 'transfer' THEN 0
        WHEN t.party = 'payer' THEN -t.amount_cents ELSE t.amount_cents END,
    CASE WHEN t.type = 'adjustment' THEN 1 ELSE 0 END
FROM history_transactions t JOIN history_claims c ON c.claim_id = t.claim_id
WHERE {transactions} AND (
    (t.type = 'payment' AND t.party = 'patient' AND t.amount_cents <> 0)
    OR (t.type = 'transfer' AND t.amount_cents <> 0)
    OR (t.type = 'adjustment' AND t.reason = 'bad_debt'))
"""
_DELETE = sa.text("DELETE FROM history_patient_ledger WHERE claim_id IN :claim_ids").bindparams(
    sa.bindparam("claim_ids", expanding=True)
)
_INSERT = sa.text(
    f"INSERT INTO history_patient_ledger ({LEDGER_COLUMNS})"
    + LEDGER_ROWS_SQL.format(claims="claim_id IN :claim_ids", transactions="t.claim_id IN :tx_ids")
).bindparams(sa.bindparam("claim_ids", expanding=True), sa.bindparam("tx_ids", expanding=True))
# One row per item that has ledger rows; items without any are left out. SUM(bigint) is numeric
# on PostgreSQL, hence the casts. The items come as VALUES on SQLite (dates as ISO text, as
# stored) and as arrays on PostgreSQL: psycopg parses a query with thousands of placeholders
# anew on every call (~5 ms for 500 items), four arrays keep it short and cached.
_TOTALS_SQL = """
WITH items (item, patient_key, claim_id, as_of) AS ({items})
SELECT items.item AS item, CAST(SUM(l.billed) AS BIGINT) AS billed,
    CAST(SUM(l.patient_paid_cents) AS BIGINT) AS paid,
    CAST(SUM(l.to_patient_cents) AS BIGINT) AS to_patient,
    CAST(SUM(l.bad_debts) AS BIGINT) AS bad_debts,
    MAX(CASE WHEN l.patient_paid_cents > 0 THEN l.date END) AS last_paid
FROM items JOIN history_patient_ledger l ON l.patient_key = items.patient_key
    AND l.date <= items.as_of AND l.claim_id <> items.claim_id
GROUP BY items.item
"""
# On SQLite the rows come back as one JSON array in one row. The sqlite3 module lets go of the
# GIL for every row it steps to, and another busy request thread of the worker then keeps it for
# up to the switch interval (5 ms): 1,000 items took 7 ms alone and 600 to 870 ms beside one busy
# thread. The values are integers and ISO dates, so the JSON text holds them exactly.
_SQLITE_ONE_ROW_SQL = """
SELECT json_group_array(json_array(item, billed, paid, to_patient, bad_debts, last_paid))
FROM ({totals})
"""
_PG_TOTALS_SQL = _TOTALS_SQL.format(
    items="SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::date[])"
)


def refresh_ledger(connection: Connection, claim_ids: Sequence[str]) -> None:
    """Rebuild the ledger rows of these claims from the stored history (inside the caller's
    transaction): their rows are deleted, then written again from history_claims and
    history_transactions."""
    for chunk in chunks(sorted(set(claim_ids))):
        ids = list(chunk)
        connection.execute(_DELETE, {"claim_ids": ids})
        connection.execute(_INSERT, {"claim_ids": ids, "tx_ids": ids})


def _totals_query(
    sqlite: bool, chunk: Sequence[tuple[str, str, date]], start: int
) -> tuple[str, list[Any]]:
    """The totals query of items ``start``, ``start + 1``, ... and its parameters (on SQLite, one
    row holding the JSON array of the rows)."""
    if sqlite:
        totals = _TOTALS_SQL.format(items="VALUES " + ",".join(["(?,?,?,?)"] * len(chunk)))
        sql = _SQLITE_ONE_ROW_SQL.format(totals=totals)
        params = [
            value
            for item, (patient_key, claim_id, as_of) in enumerate(chunk, start)
            for value in (item, patient_key, claim_id, as_of.isoformat())
        ]
        return sql, params
    patient_keys, claim_ids, as_ofs = zip(*chunk, strict=True)
    numbers = list(range(start, start + len(chunk)))
    return _PG_TOTALS_SQL, [numbers, list(patient_keys), list(claim_ids), list(as_ofs)]


def _date(value: str | date) -> date:
    """A stored date: SQLite hands back ISO text, PostgreSQL a date."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def other_claims_totals(
    engine: Engine, items: Sequence[tuple[str, str, date]]
) -> list[OtherClaims]:
    """For each (patient_key, claim_id, as_of), in order, what the patient's other stored claims
    add as of that date: ``serving.scoring.online_snapshot.other_claims`` over the stored
    records, from the ledger. One query per ``IN_CHUNK`` items, all in one snapshot, through the
    driver's cursor (SQLAlchemy's result rows would cost more than the query)."""
    found = [OtherClaims()] * len(items)
    if not items:
        return found
    errors = (SQLAlchemyError, engine.dialect.loaded_dbapi.Error)
    sqlite = is_sqlite(engine)
    try:
        with snapshot_transaction(engine) as connection:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                for start in range(0, len(items), IN_CHUNK):
                    chunk = items[start : start + IN_CHUNK]
                    cursor.execute(*_totals_query(sqlite, chunk, start))
                    rows = cursor.fetchall()
                    if sqlite:
                        rows = orjson.loads(rows[0][0])
                    for item, billed, paid, to_patient, bad_debts, last in rows:
                        last = None if last is None else _date(last)
                        found[item] = OtherClaims(billed, paid, to_patient, bad_debts, last)
            finally:
                cursor.close()
    except errors as exc:
        raise HistoryStoreUnavailable(
            f"history store unavailable while reading the patient ledger: {type(exc).__name__}"
        ) from exc
    return found

"""The server's copy of the history sent through the API (and ``arscore load``).

Claims are keyed by ``claim_id``: a later send updates a claim's fields. A transaction is keyed
by ``(claim_id, identity)`` where the identity is the sha256 of its canonical field values plus
its occurrence number among identical rows of the same claim in that send: two genuinely
identical payments in one send are two transactions, re-sending a send adds nothing.

Amounts are stored exactly, as integer cents; an amount that is not a whole number of cents is
refused rather than rounded. The raw patient identifier never reaches this module: claims carry
the ``patient_key`` pseudonym that ``features.history.validate_history`` put in its place.
Every write keeps the patient ledger (``serving.history.ledger``) in step, in its transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from features.history import History
from features.schema import Column
from serving.history.ledger import refresh_ledger
from serving.history.tables import (
    CLAIM_FRAME_COLUMNS,
    CLAIM_NAMES,
    TRANSACTION_FRAME_COLUMNS,
    HistoryStoreError,
    HistoryStoreUnavailable,
    chunks,
    db_name,
    history_claims,
    history_transactions,
)
from serving.store.bulk import DriverInsert, DriverUpdate, fetch_rows
from serving.store.engine import PG_LOCK_HISTORY, snapshot_transaction, write_transaction


@dataclass(frozen=True)
class UpsertResult:
    """What one upsert changed."""

    claims_new: int
    claims_updated: int
    transactions_new: int
    transactions_duplicate: int


def _cents(values: pd.Series, column: str, frame: pd.DataFrame, source: str) -> list[int | None]:
    """Amounts as integer cents; refuse any amount that is not a whole number of cents."""
    amounts = values.astype("float64").to_numpy()
    cents = np.rint(amounts * 100)
    bad = ~np.isnan(amounts) & (cents / 100 != amounts)
    if bad.any():
        claims = ", ".join(frame.loc[bad, "claim_id"].astype(str).unique()[:5])
        raise HistoryStoreError(
            f"{source}: column '{column}' has {int(bad.sum())} amount(s) that are not a whole "
            f"number of cents (claims {claims}); amounts are stored exactly, to the cent"
        )
    return [None if np.isnan(c) else int(c) for c in cents]


def _db_rows(frame: pd.DataFrame, columns: tuple[Column, ...], source: str) -> list[dict[str, Any]]:
    """Frame rows as dicts of database values (dates, integer cents, None for missing)."""
    data: dict[str, list[Any]] = {}
    for column in columns:
        values = frame[column.name]
        if column.kind == "money":
            data[db_name(column)] = _cents(values, column.name, frame, source)
        elif column.kind == "date":
            data[column.name] = [None if pd.isna(v) else v.date() for v in values]
        elif column.kind == "int":
            data[column.name] = [None if pd.isna(v) else int(v) for v in values]
        else:
            data[column.name] = [None if pd.isna(v) else str(v) for v in values]
    names = list(data)
    return [dict(zip(names, row, strict=True)) for row in zip(*data.values(), strict=True)]


def _check_columns(frame: pd.DataFrame, columns: tuple[Column, ...], source: str) -> None:
    if "patient_id" in frame.columns:
        raise HistoryStoreError(
            f"{source}: has a raw 'patient_id' column; pass frames from validate_history, "
            "which replaces it with the patient_key pseudonym"
        )
    missing = [c.name for c in columns if c.name not in frame.columns]
    if missing:
        raise HistoryStoreError(f"{source}: missing column(s) {', '.join(missing)}")


def transaction_identities(rows: list[dict[str, Any]]) -> list[str]:
    """Identity of each transaction row: sha256 of its canonical values and its occurrence
    number among identical rows of the same claim in this batch."""
    seen: dict[str, int] = {}
    identities = []
    for row in rows:
        values = [row[db_name(c)] for c in TRANSACTION_FRAME_COLUMNS]
        canonical = json.dumps(values, default=str, separators=(",", ":"), ensure_ascii=False)
        occurrence = seen.get(canonical, 0)
        seen[canonical] = occurrence + 1
        identities.append(hashlib.sha256(f"{canonical}#{occurrence}".encode()).hexdigest())
    return identities


def _frame(rows: Sequence[Any], columns: tuple[Column, ...]) -> pd.DataFrame:
    """Database rows as a frame with exactly the dtypes validate_history produces."""
    records = [dict(row._mapping) for row in rows]
    data: dict[str, pd.Series] = {}
    for column in columns:
        values = [record[db_name(column)] for record in records]
        if column.kind == "money":
            cents = pd.Series(values, dtype="float64")
            data[column.name] = cents / 100
        elif column.kind == "date":
            data[column.name] = pd.Series(pd.to_datetime(values), dtype="datetime64[ns]")
        elif column.kind == "int":
            data[column.name] = pd.Series(values, dtype="Int64")
        else:
            data[column.name] = pd.Series(values, dtype="object").astype("string")
    return pd.DataFrame(data, index=pd.RangeIndex(len(records)))


class HistoryStore:
    """Claims and transactions received by the server, on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._claims_insert = DriverInsert(history_claims, engine)
        self._claims_update = DriverUpdate(history_claims, engine, "claim_id")
        self._transactions_insert = DriverInsert(
            history_transactions, engine, [c.name for c in history_transactions.columns][1:]
        )

    def upsert(self, claims: pd.DataFrame, transactions: pd.DataFrame) -> UpsertResult:
        """Store validated frames idempotently, in one transaction (all or nothing) that also
        refreshes the patient ledger of every claim inserted, changed or given transactions."""

        _check_columns(claims, CLAIM_FRAME_COLUMNS, "claims")
        _check_columns(transactions, TRANSACTION_FRAME_COLUMNS, "transactions")
        claim_rows = _db_rows(claims, CLAIM_FRAME_COLUMNS, "claims")
        tx_rows = _db_rows(transactions, TRANSACTION_FRAME_COLUMNS, "transactions")
        for row, identity in zip(tx_rows, transaction_identities(tx_rows), strict=True):
            row["identity"] = identity
        errors = (SQLAlchemyError, self.engine.dialect.loaded_dbapi.Error)  # the driver's inserts
        try:
            with write_transaction(self.engine, pg_lock=PG_LOCK_HISTORY) as connection:
                claims_new, claims_updated = self._upsert_claims(connection, claim_rows)
                tx_new = self._insert_transactions(connection, tx_rows, claim_rows)
                refresh_ledger(connection, [*claims_new, *claims_updated, *tx_new])
        except errors as exc:
            raise HistoryStoreUnavailable(
                f"history store unavailable, nothing was written: {type(exc).__name__}"
            ) from exc
        n_new = len(tx_new)
        return UpsertResult(len(claims_new), len(claims_updated), n_new, len(tx_rows) - n_new)

    def _upsert_claims(
        self, connection: Connection, rows: list[dict[str, Any]]
    ) -> tuple[list[str], list[str]]:
        """Insert new claims and update changed ones; the claim_ids of each."""
        stored = {}
        for chunk in chunks([row["claim_id"] for row in rows]):
            query = sa.select(history_claims).where(history_claims.c.claim_id.in_(chunk))
            for values in fetch_rows(connection, query):
                row = dict(zip(CLAIM_NAMES, values, strict=True))
                stored[row["claim_id"]] = row
        new = [row for row in rows if row["claim_id"] not in stored]
        changed = [
            row for row in rows if row["claim_id"] in stored and stored[row["claim_id"]] != row
        ]
        self._claims_insert.execute(connection, new)
        self._claims_update.execute(connection, changed)
        return [row["claim_id"] for row in new], [row["claim_id"] for row in changed]

    def _insert_transactions(
        self, connection: Connection, rows: list[dict[str, Any]], claim_rows: list[dict[str, Any]]
    ) -> list[str]:
        """Insert the transactions not stored yet; the claim_id of each one inserted."""
        claim_ids = sorted({row["claim_id"] for row in rows})
        sent = {row["claim_id"] for row in claim_rows}
        existing: set[tuple[str, str]] = set()
        known: set[str] = set()
        table = history_transactions
        for chunk in chunks(claim_ids):
            query = sa.select(table.c.claim_id, table.c.identity).where(table.c.claim_id.in_(chunk))
            existing.update(fetch_rows(connection, query))
            query = sa.select(history_claims.c.claim_id).where(history_claims.c.claim_id.in_(chunk))
            known.update(claim_id for (claim_id,) in fetch_rows(connection, query))
        known |= sent
        unknown = [claim_id for claim_id in claim_ids if claim_id not in known]
        if unknown:
            raise HistoryStoreError(
                f"transactions: claim_id(s) {', '.join(unknown[:5])} are neither in this send "
                "nor stored; nothing was written"
            )
        new = [row for row in rows if (row["claim_id"], row["identity"]) not in existing]
        self._transactions_insert.execute(connection, new)
        return [row["claim_id"] for row in new]

    def load(
        self, claim_ids: Sequence[str] | None = None, patient_keys: Sequence[str] | None = None
    ) -> History:
        """The stored history as validate_history would return it: all of it, or the claims whose
        claim_id is in ``claim_ids`` or whose patient_key is in ``patient_keys`` (a union), with
        their transactions."""
        try:
            with snapshot_transaction(self.engine) as connection:
                claim_rows, tx_rows = self._rows(connection, claim_ids, patient_keys)
        except SQLAlchemyError as exc:
            raise HistoryStoreUnavailable(
                f"history store unavailable while loading: {type(exc).__name__}"
            ) from exc
        claims = _frame(claim_rows, CLAIM_FRAME_COLUMNS)
        transactions = _frame(tx_rows, TRANSACTION_FRAME_COLUMNS)
        return History(
            claims=claims.sort_values("claim_id", kind="stable", ignore_index=True),
            transactions=transactions.sort_values(
                ["claim_id", "date"], kind="stable", ignore_index=True
            ),
        )

    def _rows(
        self,
        connection: Connection,
        claim_ids: Sequence[str] | None,
        patient_keys: Sequence[str] | None,
    ) -> tuple[list[Any], list[Any]]:
        claims_query = sa.select(history_claims)
        tx_query = sa.select(history_transactions).order_by(history_transactions.c.id)
        if claim_ids is None and patient_keys is None:
            return list(connection.execute(claims_query)), list(connection.execute(tx_query))
        claim_rows = self._claims_matching(connection, claims_query, claim_ids, patient_keys)
        tx_rows: list[Any] = []
        for chunk in chunks([row.claim_id for row in claim_rows]):
            tx_rows.extend(
                connection.execute(tx_query.where(history_transactions.c.claim_id.in_(chunk)))
            )
        return claim_rows, tx_rows

    def _claims_matching(
        self,
        connection: Connection,
        query: Any,
        claim_ids: Sequence[str] | None,
        patient_keys: Sequence[str] | None,
    ) -> list[Any]:
        found: dict[str, Any] = {}
        for column, values in (
            (history_claims.c.claim_id, claim_ids),
            (history_claims.c.patient_key, patient_keys),
        ):
            for chunk in chunks(sorted(set(values or ()))):
                found.update(
                    (r.claim_id, r) for r in connection.execute(query.where(column.in_(chunk)))
                )
        return list(found.values())

    def open_claim_ids(self) -> list[str]:
        """Claims whose balance may be open (for now: every stored claim), sorted."""
        with self.engine.connect() as connection:
            query = sa.select(history_claims.c.claim_id).order_by(history_claims.c.claim_id)
            return list(connection.execute(query).scalars())

"""The patients' stored history as records for the online path, without DataFrames.

``HistoryStore.load`` returns frames: ~10 ms for one patient, nearly all of it building pandas
columns. Scoring needs a few rows per patient, so this reads the store's own tables
(``serving.history_store``) and returns the records ``records_from_frames(HistoryStore.load(...))``
would give, in the same order (claims by claim_id; transactions by claim_id then date, in the
order they were stored). ``tests/serving/test_scorer.py`` checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import Engine

from serving.history_store import IN_CHUNK, history_claims, history_transactions
from serving.online_features import ClaimRecord, EventRecord

StoredHistory = dict[str, tuple[list[ClaimRecord], list[EventRecord]]]

_CLAIM_COLUMNS = (
    history_claims.c.claim_id,
    history_claims.c.patient_key,
    history_claims.c.payer_id,
    history_claims.c.payer_type,
    history_claims.c.claim_type,
    history_claims.c.place_of_service,
    sa.type_coerce(history_claims.c.service_date, sa.String),
    sa.type_coerce(history_claims.c.billed_date, sa.String),
    history_claims.c.total_charge_cents,
    history_claims.c.expected_amount_cents,
    history_claims.c.patient_age,
    history_claims.c.patient_state,
    history_claims.c.patient_zip3,
)
_TRANSACTION_COLUMNS = (
    history_transactions.c.claim_id,
    sa.type_coerce(history_transactions.c.date, sa.String),
    history_transactions.c.type,
    history_transactions.c.amount_cents,
    history_transactions.c.party,
    history_transactions.c.carc_group,
    history_transactions.c.carc_code,
    history_transactions.c.rarc_code,
    history_transactions.c.reason,
)


def _dollars(cents: int | Decimal | None) -> float | None:
    """Stored integer cents as the float dollars ``HistoryStore.load`` gives (cents / 100)."""
    return None if cents is None else float(cents) / 100


def _date(value: str | date) -> date:
    """A stored date: SQLite hands back ISO text (read raw, parsed in C), PostgreSQL a date."""
    return date.fromisoformat(value) if isinstance(value, str) else value


def _claim(row: Sequence) -> ClaimRecord:
    return ClaimRecord(
        claim_id=row[0],
        patient_key=row[1],
        payer_id=row[2],
        payer_type=row[3],
        claim_type=row[4],
        place_of_service=row[5],
        service_date=_date(row[6]),
        billed_date=_date(row[7]),
        total_charge=float(row[8]) / 100,
        expected_amount=_dollars(row[9]),
        patient_age=row[10],
        patient_state=row[11],
        patient_zip3=row[12],
    )


def _event(row: Sequence) -> EventRecord:
    return EventRecord(
        row[0], _date(row[1]), row[2], _dollars(row[3]), row[4], row[5], row[6], row[7], row[8]
    )


def load_stored(engine: Engine, patient_keys: Sequence[str]) -> StoredHistory:
    """Each patient's stored claims and transactions, grouped by patient key."""
    keys = sorted(set(patient_keys))
    claims: list[ClaimRecord] = []
    events: list[EventRecord] = []
    if not keys:
        return {}
    with engine.connect() as connection:
        for start in range(0, len(keys), IN_CHUNK):
            chunk = keys[start : start + IN_CHUNK]
            mine = history_claims.c.patient_key.in_(chunk)
            claims += map(_claim, connection.execute(sa.select(*_CLAIM_COLUMNS).where(mine)))
            their_ids = sa.select(history_claims.c.claim_id).where(mine)
            query = (
                sa.select(*_TRANSACTION_COLUMNS)
                .where(history_transactions.c.claim_id.in_(their_ids))
                .order_by(history_transactions.c.id)
            )
            events += map(_event, connection.execute(query))
    claims.sort(key=lambda c: c.claim_id)
    events.sort(key=lambda e: (e.claim_id, e.date))
    grouped: StoredHistory = {}
    patient_of = {}
    for claim in claims:
        grouped.setdefault(claim.patient_key, ([], []))[0].append(claim)
        patient_of[claim.claim_id] = claim.patient_key
    for event in events:
        grouped[patient_of[event.claim_id]][1].append(event)
    return grouped

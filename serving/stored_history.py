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
from operator import attrgetter

from sqlalchemy import Engine

from serving.db import snapshot_transaction
from serving.history_store import IN_CHUNK
from serving.online_features import ClaimRecord, EventRecord

StoredHistory = dict[str, tuple[list[ClaimRecord], list[EventRecord]]]

_CLAIMS_SQL = (
    "SELECT claim_id, patient_key, payer_id, payer_type, claim_type, place_of_service,"
    " service_date, billed_date, total_charge_cents, expected_amount_cents, patient_age,"
    " patient_state, patient_zip3 FROM history_claims WHERE patient_key IN ({keys})"
)
_EVENTS_SQL = (  # answered from the covering index of migration 0003
    "SELECT claim_id, date, type, amount_cents, party, carc_group, carc_code, rarc_code, reason"
    " FROM history_transactions WHERE claim_id IN"
    " (SELECT claim_id FROM history_claims WHERE patient_key IN ({keys})) ORDER BY id"
)


def _date(value: str | date) -> date:
    """A stored date: SQLite hands back ISO text (parsed in C), PostgreSQL a date."""
    return date.fromisoformat(value) if type(value) is str else value  # type: ignore[arg-type]


def _claim(row: Sequence) -> ClaimRecord:
    expected = row[9]
    return ClaimRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        _date(row[6]),
        _date(row[7]),
        float(row[8]) / 100,
        None if expected is None else float(expected) / 100,
        row[10],
        row[11],
        row[12],
    )


def _events(rows: Sequence[Sequence]) -> list[EventRecord]:
    """Stored rows as records: amounts as the float dollars ``HistoryStore.load`` gives
    (cents / 100), dates as ``date``. One comprehension: this runs for every stored event."""
    make, iso = EventRecord._make, date.fromisoformat
    return [
        make(
            (
                claim_id,
                iso(day) if type(day) is str else day,
                kind,
                None if cents is None else float(cents) / 100,
                party,
                group,
                code,
                rarc,
                reason,
            )
        )
        for claim_id, day, kind, cents, party, group, code, rarc, reason in rows
    ]


def _placeholders(engine: Engine, count: int) -> str:
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    return ",".join([marker] * count)


def load_stored(engine: Engine, patient_keys: Sequence[str]) -> StoredHistory:
    """Each patient's stored claims and transactions, grouped by patient key.

        Both reads run in one snapshot, so a send landing in between cannot pair a claim with
        transactions it does not have. They go through the driver's own cursor: SQLAlchemy's result
    rows cost three times the fetch itself here (~14,000 rows for 1,000 patients)."""
    keys = sorted(set(patient_keys))
    if not keys:
        return {}
    claims: list[ClaimRecord] = []
    rows: list[Sequence] = []
    with snapshot_transaction(engine) as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for start in range(0, len(keys), IN_CHUNK):
                chunk = tuple(keys[start : start + IN_CHUNK])
                marks = _placeholders(engine, len(chunk))
                cursor.execute(_CLAIMS_SQL.format(keys=marks), chunk)
                claims += map(_claim, cursor.fetchall())
                cursor.execute(_EVENTS_SQL.format(keys=marks), chunk)
                rows += cursor.fetchall()
        finally:
            cursor.close()
    events = _events(rows)
    claims.sort(key=attrgetter("claim_id"))
    events.sort(key=attrgetter("claim_id", "date"))
    grouped: StoredHistory = {}
    patient_of = {}
    for claim in claims:
        grouped.setdefault(claim.patient_key, ([], []))[0].append(claim)
        patient_of[claim.claim_id] = claim.patient_key
    for event in events:
        grouped[patient_of[event.claim_id]][1].append(event)
    return grouped

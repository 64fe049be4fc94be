"""An account as of now, for decisions on it: its snapshot from the stored history, and what was
written off on it here.

The worklist keeps the facts of the last rescore; a dispute, a financial-assistance application
or a payment sent through ``POST /v1/history`` since then is in the stored history only. So an
action (and an approval) is checked against the claim's snapshot as of today, built from every
stored transaction of the claim (``serving.scoring.online_snapshot.claim_snapshot``) and what the
patient's other stored claims add (``online_snapshot.other_claims``, the reference the patient
ledger is held equal to), read on the caller's connection, inside the transaction that records
the decision. The model's numbers (probability, expected recovery) are the score's the action
names: a score is a judgement of its time, the facts are today's.

What is still open counts the write-offs recorded here: the open balance of the history, less
those write-offs the history does not show yet. arscore does not post adjustments to the
history; the RCM system does, and sends them back. An adjustment the history shows dated on or
after the first write-off recorded here is taken as the posting of those write-offs (up to their
total), so a posted write-off is not counted twice.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from features.money import dollars
from serving.history.tables import history_claims, history_transactions
from serving.policy.facts import policy_columns
from serving.scoring.online_snapshot import claim_snapshot, other_claims
from serving.scoring.records import ClaimRecord, EventRecord
from serving.store.engine import is_sqlite
from serving.worklist.store import WRITE_OFF, WorklistRow, account_actions

PG_LOCK_ACCOUNT = 7_240_101
"""First key of the two-key advisory lock one account's decisions take on PostgreSQL (the second
is a hash of the claim_id): decisions on one account are made one at a time. SQLite's write
transaction (``BEGIN IMMEDIATE``) serializes them already."""


@dataclass(frozen=True)
class AccountNow:
    """The account as of ``as_of``: the snapshot, the policy's input, what was written off."""

    as_of: date
    snapshot: dict[str, Any]
    facts: dict[str, Any]
    written_off_cents: int
    unposted_cents: int

    @property
    def open_balance_cents(self) -> int:
        return int(round(self.snapshot["open_balance"] * 100))

    @property
    def still_open_cents(self) -> int:
        """The open balance less the write-offs recorded here that the history does not show."""
        return self.open_balance_cents - self.unposted_cents

    def checked_facts(self) -> dict[str, Any]:
        """The policy's input columns as checked, for the audit record."""
        return {name: self.facts[name] for name in policy_columns()}


def lock_account(connection: Connection, claim_id: str) -> None:
    """Make the caller's transaction the only one deciding on this account until it ends."""
    if is_sqlite(connection):
        return
    second = zlib.crc32(claim_id.encode("utf-8")) - 2**31  # an int4
    connection.execute(
        sa.text("SELECT pg_advisory_xact_lock(:first, :second)"),
        {"first": PG_LOCK_ACCOUNT, "second": second},
    )


def _money(cents: int | None) -> float | None:
    return None if cents is None else cents / 100


def _claim_record(row: Any) -> ClaimRecord:
    return ClaimRecord(
        claim_id=row.claim_id,
        patient_key=row.patient_key,
        payer_id=row.payer_id,
        payer_type=row.payer_type,
        claim_type=row.claim_type,
        place_of_service=row.place_of_service,
        service_date=row.service_date,
        billed_date=row.billed_date,
        total_charge=_money(row.total_charge_cents) or 0.0,
        expected_amount=_money(row.expected_amount_cents),
        patient_age=row.patient_age,
        patient_state=row.patient_state,
        patient_zip3=row.patient_zip3,
    )


def _event_record(row: Any) -> EventRecord:
    return EventRecord(
        claim_id=row.claim_id,
        date=row.date,
        type=row.type,
        amount=_money(row.amount_cents),
        party=row.party,
        carc_group=row.carc_group,
        carc_code=row.carc_code,
        rarc_code=row.rarc_code,
        reason=row.reason,
    )


def patient_records(
    connection: Connection, claim_id: str
) -> tuple[ClaimRecord, list[ClaimRecord], list[EventRecord]] | None:
    """The stored claim, every stored claim of its patient, and their transactions (by claim,
    date, then the order they were stored in); None when the claim is not stored."""
    c, t = history_claims, history_transactions
    own = connection.execute(sa.select(c).where(c.c.claim_id == claim_id)).first()
    if own is None:
        return None
    claims = [
        _claim_record(row)
        for row in connection.execute(sa.select(c).where(c.c.patient_key == own.patient_key))
    ]
    events_query = (
        sa.select(t)
        .join(c, c.c.claim_id == t.c.claim_id)
        .where(c.c.patient_key == own.patient_key)
        .order_by(t.c.claim_id, t.c.date, t.c.id)
    )
    events = [_event_record(row) for row in connection.execute(events_query)]
    return _claim_record(own), claims, events


def written_off(connection: Connection, claim_id: str) -> tuple[int, int]:
    """(cents written off on the claim here, of those not yet shown by the history)."""
    a, t = account_actions, history_transactions
    total, first = connection.execute(
        sa.select(sa.func.sum(a.c.amount_cents), sa.func.min(a.c.acted_on)).where(
            a.c.claim_id == claim_id, a.c.action == WRITE_OFF
        )
    ).one()
    if not total:
        return 0, 0
    posted = connection.execute(
        sa.select(sa.func.sum(t.c.amount_cents)).where(
            t.c.claim_id == claim_id, t.c.type == "adjustment", t.c.date >= first
        )
    ).scalar_one()
    return int(total), max(0, int(total) - int(posted or 0))


def account_now(connection: Connection, account: WorklistRow, as_of: date) -> AccountNow | None:
    """The account as of ``as_of`` from the stored history (see the module docstring); None when
    the claim is not stored or has no open balance as of then."""
    records = patient_records(connection, account.claim_id)
    if records is None:
        return None
    claim, patient_claims, patient_events = records
    own = [event for event in patient_events if event.claim_id == claim.claim_id]
    others = other_claims(claim.claim_id, patient_claims, patient_events, as_of)
    snapshot = claim_snapshot(claim, own, others, as_of)
    if snapshot is None:
        return None
    recovery = account.expected_recovery_cents
    facts = {
        **snapshot,
        "probability_collected": account.probability_collected,
        "expected_recovery": None if recovery is None else float(dollars(recovery)),
    }
    total, unposted = written_off(connection, account.claim_id)
    return AccountNow(as_of, snapshot, facts, total, unposted)

"""The value types of the online path: a claim and its events in the interchange format (patient
pseudonymized, money as float) and what a patient's other claims add to a snapshot.

Plain named tuples, so the history ledger, the claim state and the API's decoders can share them
without importing the snapshot algorithm.
"""

from __future__ import annotations

from datetime import date
from typing import Any, NamedTuple

import pandas as pd


class ClaimRecord(NamedTuple):
    """One claim in the interchange format, patient already pseudonymized; money as float."""

    claim_id: str
    patient_key: str
    payer_id: str
    payer_type: str
    claim_type: str
    place_of_service: str
    service_date: date
    billed_date: date
    total_charge: float
    expected_amount: float | None = None
    patient_age: int | None = None
    patient_state: str | None = None
    patient_zip3: str | None = None


class EventRecord(NamedTuple):
    """One transaction in the interchange format; money as float, missing text as None."""

    claim_id: str
    date: date
    type: str
    amount: float | None = None
    party: str | None = None
    carc_group: str | None = None
    carc_code: str | None = None
    rarc_code: str | None = None
    reason: str | None = None


def _plain(values: pd.Series) -> list[Any]:
    """A column as Python values: dates as ``date``, every kind of missing as None."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return [None if pd.isna(v) else v.date() for v in values.tolist()]
    return [None if v is None or v is pd.NA or v != v else v for v in values.tolist()]


def records_from_frames(
    claims: pd.DataFrame, transactions: pd.DataFrame
) -> tuple[list[ClaimRecord], list[EventRecord]]:
    """Validated history frames (``features.history.History``) as records, order kept."""
    claim_columns = [
        _plain(claims[name]) if name in claims.columns else [None] * len(claims)
        for name in ClaimRecord._fields
    ]
    event_columns = [
        _plain(transactions[name]) if name in transactions.columns else [None] * len(transactions)
        for name in EventRecord._fields
    ]
    return (
        [ClaimRecord(*row) for row in zip(*claim_columns, strict=True)],
        [EventRecord(*row) for row in zip(*event_columns, strict=True)],
    )


class OtherClaims(NamedTuple):
    """What a snapshot's patient-history features need of the patient's *other* claims as known
    at the as-of date: claims billed and transactions dated on or before it. Money in cents."""

    billed: int = 0
    """other claims billed on or before the as-of date"""
    patient_paid_cents: int = 0
    """patient payments on them"""
    to_patient_cents: int = 0
    """moved to the patient's responsibility: transfers (to payer negative) and, for self-pay
    claims, the total charge on the billed date"""
    bad_debts: int = 0
    """bad-debt adjustments on them"""
    last_patient_payment: date | None = None
    """the latest date of a positive patient payment on them"""

"""The online path: one claim's snapshot as of one date, and its feature row, in pure Python.

``features.snapshots.build_snapshots`` costs ~60 ms whatever the input size (frames, sorts,
as-of joins); a claim has a handful of events. ``claim_snapshot`` walks those events and returns
exactly the values ``build_snapshots(history, [as_of], labels=None, claim_ids=[claim_id])``
computes for the history ``online_history`` describes: the claim first, then the patient's other
stored claims, transactions in the same order. Running totals are compensated (Kahan) sums in
event order, as pandas' grouped ``cumsum`` computes them, so even the last bit agrees. Parity is
proven by ``tests/serving/test_online_features.py`` over generated claims and as-of dates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.events import AMOUNT_TOTALS, COUNT_TOTALS, PATIENT_SIDE_ADJUSTMENTS
from features.pipeline import FeaturePipeline
from features.snapshots import AGING_BUCKETS, AGING_EDGES, OPEN_BALANCE_EPSILON

NAN = math.nan
_COUNT_INDEX = {name: position for position, name in enumerate(COUNT_TOTALS)}


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


def online_history(
    claim: ClaimRecord,
    transactions: Sequence[EventRecord],
    stored_claims: Sequence[ClaimRecord],
    stored_events: Sequence[EventRecord],
) -> tuple[list[ClaimRecord], list[EventRecord]]:
    """The history a claim is scored on: itself, then the patient's other stored claims."""
    others = [c for c in stored_claims if c.claim_id != claim.claim_id]
    other_ids = {c.claim_id for c in others}
    other_events = [e for e in stored_events if e.claim_id in other_ids]
    return [claim, *others], [*transactions, *other_events]


class _Kahan:
    """Compensated running sums, operation for operation as pandas' ``group_cumsum``."""

    __slots__ = ("sums", "compensation")

    def __init__(self, width: int):
        self.sums = [0.0] * width
        self.compensation = [0.0] * width

    def add(self, values: Sequence[float]) -> None:
        sums, compensation = self.sums, self.compensation
        for position, value in enumerate(values):
            carried = compensation[position]
            if value == 0.0 and carried == 0.0:
                continue  # adds exactly nothing (up to the sign of a zero sum)
            y = value - carried
            t = sums[position] + y
            compensation[position] = t - sums[position] - y
            sums[position] = t


def _amount_deltas(event: EventRecord) -> tuple[tuple[float, ...], list[str]]:
    """The change one event makes to each amount total, and the counts it increments."""
    kind = event.type
    party = event.party or ""
    reason = event.reason or ""
    amount = event.amount if event.amount is not None and event.amount == event.amount else 0.0
    payment = kind == "payment"
    patient_payment = payment and party == "patient"
    adjustment = kind == "adjustment"
    contractual = adjustment and (
        reason == "contractual"
        or (reason == "" and (event.carc_group or "") == "CO" and event.carc_code == "45")
    )
    transfer = kind == "transfer"
    amounts = (
        amount if payment and not patient_payment else 0.0,
        amount if patient_payment else 0.0,
        amount if contractual else 0.0,
        amount if adjustment and not contractual else 0.0,
        amount if adjustment and reason in PATIENT_SIDE_ADJUSTMENTS else 0.0,
        amount if kind == "refund" else 0.0,
        (-amount if party == "payer" else amount) if transfer else 0.0,
    )
    counts = []
    if adjustment and reason == "bad_debt":
        counts.append("bad_debts")
    if payment:
        counts.append("n_payments")
        if patient_payment:
            counts.append("n_patient_payments")
    elif kind == "denial":
        counts.append("n_denials")
    elif kind == "statement":
        counts.append("n_statements")
    elif kind == "appeal":
        if reason in ("filed", ""):
            counts.append("appeals_filed")
        if reason in ("won", "lost"):
            counts.append("appeals_closed")
        if reason == "won":
            counts.append("appeals_won")
    elif kind == "fap_application":
        counts.append("fap_applications")
    elif kind == "fap_decision":
        counts.append("fap_decisions")
        if reason == "approved":
            counts.append("fap_approved")
    elif kind == "dispute_open":
        counts.append("disputes_opened")
    elif kind == "dispute_closed":
        counts.append("disputes_closed")
    elif kind == "payment_plan":
        counts.append("payment_plans")
    if (payment and not patient_payment) or kind == "denial" or contractual or transfer:
        counts.append("adjudications")
    return amounts, counts


def _ordered_events(
    claims: Sequence[ClaimRecord], events: Sequence[EventRecord], as_of: date
) -> list[EventRecord]:
    """Self-pay transfers first, then the transactions; stable by date; up to ``as_of``."""
    virtual = [
        EventRecord(c.claim_id, c.billed_date, "transfer", c.total_charge, "patient")
        for c in claims
        if c.payer_type == "self_pay"
    ]
    ordered = sorted([*virtual, *events], key=attrgetter("date"))
    return [e for e in ordered if e.date <= as_of]


_Deltas = tuple[EventRecord, tuple[float, ...], list[str]]


def _claim_state(claim_id: str, deltas: Sequence[_Deltas]) -> dict[str, Any]:
    """A claim's running totals, last dates and last denial codes after its events."""
    amounts = _Kahan(len(AMOUNT_TOTALS))
    counts = [0] * len(COUNT_TOTALS)
    state: dict[str, Any] = {
        "last_carc_code": None,
        "last_carc_group": None,
        "last_payment_date": None,
        "last_statement_date": None,
        "last_denial_date": None,
        "first_statement_date": None,
    }
    for event, amount_deltas, counted in deltas:
        if event.claim_id != claim_id:
            continue
        amounts.add(amount_deltas)
        for name in counted:
            counts[_COUNT_INDEX[name]] += 1
        if event.type == "payment":
            state["last_payment_date"] = event.date
        elif event.type == "statement":
            state["last_statement_date"] = event.date
            if state["first_statement_date"] is None:
                state["first_statement_date"] = event.date
        elif event.type == "denial":
            state["last_denial_date"] = event.date
            if event.carc_code is not None:
                state["last_carc_code"] = event.carc_code
            if event.carc_group is not None:
                state["last_carc_group"] = event.carc_group
    state.update(zip(AMOUNT_TOTALS, amounts.sums, strict=True))
    state.update(zip(COUNT_TOTALS, counts, strict=True))
    return state


def _patient_state(deltas: Sequence[_Deltas]) -> dict[str, Any]:
    """The patient's totals over all their claims' events (this claim's included)."""
    totals = _Kahan(3)
    bad_debts = 0
    last_payment: date | None = None
    for event, amounts, counted in deltas:
        totals.add((amounts[1], amounts[6], amounts[4]))
        if "bad_debts" in counted:
            bad_debts += 1
        if amounts[1] > 0:
            last_payment = event.date
    patient_paid, to_patient, _side = totals.sums
    return {
        "pt_patient_paid": patient_paid,
        "pt_to_patient": to_patient,
        "pt_bad_debts": bad_debts,
        "pt_last_payment_date": last_payment,
    }


def _days(as_of: date, earlier: date | None) -> float:
    return NAN if earlier is None else float((as_of - earlier).days)


def _clip(value: float, lower: float | None = None, upper: float | None = None) -> float:
    """pandas' clip: NaN stays NaN, a bound only replaces values beyond it."""
    if lower is not None and value < lower:
        value = lower
    if upper is not None and value > upper:
        value = upper
    return value


def aging_bucket(days: float) -> str:
    """Aging bucket of a number of days, as ``features.snapshots.aging_bucket``."""
    if days != days:
        return AGING_BUCKETS[-1]
    return AGING_BUCKETS[sum(1 for edge in AGING_EDGES if edge < days)]


def _derive(snap: dict[str, Any], as_of: date) -> None:
    """Balances, ages and states from the running totals (``features.snapshots._derive``)."""
    paid = snap["payer_paid"] + snap["patient_paid"]
    adjusted = snap["contractual_adjusted"] + snap["other_adjusted"]
    open_balance = snap["total_charge"] - paid - adjusted + snap["refunded"]
    owed = snap["to_patient"] - snap["patient_paid"] - snap["patient_side_adjusted"]
    patient_balance = _clip(_clip(owed, lower=0.0), upper=_clip(open_balance, lower=0.0))
    payer_balance = _clip(open_balance - patient_balance, lower=0.0)
    adjudicated = snap["adjudications"] > 0 or snap["payer_type"] == "self_pay"
    expected = snap["expected_amount"]
    expected = NAN if expected is None else expected
    pending = not adjudicated and expected == expected
    collectible = open_balance
    if pending:
        collectible = min(open_balance, _clip(expected - paid, lower=0.0))
    snap.update(
        paid_to_date=paid,
        adjusted_to_date=adjusted,
        open_balance=open_balance,
        patient_balance=patient_balance,
        payer_balance=payer_balance,
        responsibility="payer" if payer_balance > OPEN_BALANCE_EPSILON else "patient",
        adjudicated=adjudicated,
        collectible_balance=_clip(collectible, lower=0.0),
        days_since_service=_days(as_of, snap["service_date"]),
        days_since_billed=_days(as_of, snap["billed_date"]),
    )
    snap["aging_bucket"] = aging_bucket(snap["days_since_service"])
    for name in ("last_payment", "last_statement", "last_denial", "first_statement"):
        snap[f"days_since_{name}"] = _days(as_of, snap[f"{name}_date"])
    snap["appeal_open"] = snap["appeals_filed"] > snap["appeals_closed"]
    snap["dispute_open"] = snap["disputes_opened"] > snap["disputes_closed"]
    snap["fap_pending"] = snap["fap_applications"] > snap["fap_decisions"]


def _patient_history(snap: dict[str, Any], patient: dict[str, Any], known: int) -> None:
    """The patient's other claims as known at the as-of date (``_patient_history``)."""
    paid_other = patient["pt_patient_paid"] - snap["patient_paid"]
    owed_other = patient["pt_to_patient"] - snap["to_patient"]
    share = paid_other / owed_other if owed_other > 0.005 else NAN
    snap.update(
        patient_prior_claims=float(known - 1),
        patient_prior_patient_balance=_clip(owed_other, lower=0.0),
        patient_prior_share_paid=_clip(share, 0.0, 1.0),
        patient_prior_bad_debts=patient["pt_bad_debts"] - snap["bad_debts"],
        patient_days_since_last_payment=_days(snap["as_of"], patient["pt_last_payment_date"]),
    )


def claim_snapshot(
    claim: ClaimRecord,
    claims: Sequence[ClaimRecord],
    events: Sequence[EventRecord],
    as_of: date,
) -> dict[str, Any] | None:
    """Snapshot of ``claim`` as of ``as_of`` over a history (``claims`` includes ``claim``, both
    tables in the order build_snapshots would get them); None if the claim was not billed by
    then or has no open balance (the rows ``build_snapshots`` leaves out)."""
    if claim.billed_date > as_of:
        return None
    patient_claims = [c for c in claims if c.patient_key == claim.patient_key]
    patient_ids = {c.claim_id for c in patient_claims}
    deltas = [
        (event, *_amount_deltas(event))
        for event in _ordered_events(patient_claims, events, as_of)
        if event.claim_id in patient_ids
    ]
    snap: dict[str, Any] = {
        "claim_id": claim.claim_id,
        "patient_key": claim.patient_key,
        "payer_id": claim.payer_id,
        "payer_type": claim.payer_type,
        "claim_type": claim.claim_type,
        "place_of_service": claim.place_of_service,
        "service_date": claim.service_date,
        "billed_date": claim.billed_date,
        "total_charge": claim.total_charge,
        "expected_amount": claim.expected_amount,
        "patient_age": claim.patient_age,
        "patient_state": claim.patient_state,
        "patient_zip3": claim.patient_zip3,
        "as_of": as_of,
    }
    snap.update(_claim_state(claim.claim_id, deltas))
    _derive(snap, as_of)
    if not snap["open_balance"] > OPEN_BALANCE_EPSILON:
        return None
    known = sum(1 for c in patient_claims if c.billed_date <= as_of)
    _patient_history(snap, _patient_state(deltas), known)
    return snap


class FeatureRows:
    """Snapshot dicts to the fitted pipeline's float rows, as ``FeaturePipeline.transform``:
    numbers and booleans as floats, missing as NaN, categories as level codes (unseen NaN)."""

    def __init__(self, pipeline: FeaturePipeline):
        self.numeric = list(pipeline.numeric)
        self.categorical = list(pipeline.categorical)
        self.codes = {
            name: {level: float(code) for code, level in enumerate(pipeline.levels_[name])}
            for name in self.categorical
        }
        self.width = len(self.numeric) + len(self.categorical)

    def row(self, snapshot: dict[str, Any]) -> list[float]:
        """One feature row (matrix column order: numeric, then categorical)."""
        values = [NAN if (v := snapshot[name]) is None else float(v) for name in self.numeric]
        for name in self.categorical:
            value = snapshot[name]
            values.append(NAN if value is None else self.codes[name].get(str(value), NAN))
        return values

    def matrix(self, snapshots: Sequence[dict[str, Any]]) -> np.ndarray:
        """The float64 feature matrix of several snapshots."""
        if not snapshots:
            return np.empty((0, self.width), dtype=np.float64)
        return np.array([self.row(s) for s in snapshots], dtype=np.float64)

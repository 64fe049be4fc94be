"""The online path: one claim's snapshot as of one date, and its feature row, in pure Python.

``features.snapshots.build_snapshots`` costs ~60 ms whatever the input size (frames, sorts,
as-of joins); a claim has a handful of events. ``claim_snapshot`` walks the claim's own events
and takes what the patient's other claims add as a few totals (``OtherClaims``: the history
server keeps them in a ledger, ``serving.history_ledger``). It returns exactly the values
``build_snapshots(history, [as_of], labels=None, claim_ids=[claim_id])`` computes for a history
holding the claim with those events and the patient's other claims: money is summed in integer
cents on both paths, so sums are exact and their order does not matter. Parity is proven by
``tests/serving/test_online_features.py`` over generated claims and as-of dates.
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
from features.snapshots import (
    AGING_BUCKETS,
    AGING_EDGES,
    MONEY_COLUMNS,
    OPEN_BALANCE_EPSILON_CENTS,
)

NAN = math.nan
_COUNT_INDEX = {name: position for position, name in enumerate(COUNT_TOTALS)}
_MONEY_COLUMNS = [name for name in MONEY_COLUMNS if name != "recovered_amount"]  # no labels


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


def cents(dollars: float | None) -> int:
    """Dollars as whole cents (half to even, as ``numpy.rint``); missing or NaN is 0."""
    if dollars is None or dollars != dollars:
        return 0
    return round(dollars * 100)


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


def patient_deltas(
    type_: str, amount: float | None, party: str | None, reason: str | None
) -> tuple[int, int, int]:
    """What one transaction adds to the patient-level totals: (patient paid cents, to-patient
    cents, bad debts)."""
    if type_ == "payment":
        return (cents(amount) if party == "patient" else 0), 0, 0
    if type_ == "transfer":
        value = cents(amount)
        return 0, (-value if party == "payer" else value), 0
    if type_ == "adjustment" and reason == "bad_debt":
        return 0, 0, 1
    return 0, 0, 0


def other_claims(
    claim_id: str,
    patient_claims: Sequence[ClaimRecord],
    patient_events: Sequence[EventRecord],
    as_of: date,
) -> OtherClaims:
    """The reference for ``OtherClaims``: the patient's stored claims and transactions other than
    ``claim_id``'s, up to ``as_of``. Sums are of integer cents, so their order does not matter."""
    others = {c.claim_id: c for c in patient_claims if c.claim_id != claim_id}
    billed = paid = to_patient = bad_debts = 0
    last: date | None = None
    for claim in others.values():
        if claim.billed_date <= as_of:
            billed += 1
            if claim.payer_type == "self_pay":
                to_patient += cents(claim.total_charge)
    for event in patient_events:
        if event.claim_id not in others or event.date > as_of:
            continue
        d_paid, d_to_patient, d_bad = patient_deltas(
            event.type, event.amount, event.party, event.reason
        )
        paid += d_paid
        to_patient += d_to_patient
        bad_debts += d_bad
        if d_paid > 0 and (last is None or event.date > last):
            last = event.date
    return OtherClaims(billed, paid, to_patient, bad_debts, last)


_Deltas = tuple[EventRecord, tuple[int, ...], list[str]]


def _amount_deltas(event: EventRecord) -> tuple[tuple[int, ...], list[str]]:
    """The change one event makes to each money total (cents), and the counts it increments."""
    kind = event.type
    party = event.party or ""
    reason = event.reason or ""
    amount = cents(event.amount)
    payment = kind == "payment"
    patient_payment = payment and party == "patient"
    adjustment = kind == "adjustment"
    contractual = adjustment and (
        reason == "contractual"
        or (reason == "" and (event.carc_group or "") == "CO" and event.carc_code == "45")
    )
    transfer = kind == "transfer"
    amounts = (
        amount if payment and not patient_payment else 0,
        amount if patient_payment else 0,
        amount if contractual else 0,
        amount if adjustment and not contractual else 0,
        amount if adjustment and reason in PATIENT_SIDE_ADJUSTMENTS else 0,
        amount if kind == "refund" else 0,
        (-amount if party == "payer" else amount) if transfer else 0,
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


def _own_events(
    claim: ClaimRecord, transactions: Sequence[EventRecord], as_of: date
) -> list[EventRecord]:
    """The claim's events up to ``as_of``, stable by date: a self-pay claim's transfer to the
    patient on its billed date first (``features.events.with_self_pay_transfers``)."""
    events = list(transactions)
    if claim.payer_type == "self_pay":
        transfer = EventRecord(claim.claim_id, claim.billed_date, "transfer", claim.total_charge)
        events.insert(0, transfer._replace(party="patient"))
    events.sort(key=attrgetter("date"))
    return [e for e in events if e.date <= as_of]


def _claim_state(events: Sequence[EventRecord]) -> dict[str, Any]:
    """A claim's running totals (money in cents), last dates and last denial codes after its
    events, and the date of its latest positive patient payment."""
    amounts = [0] * len(AMOUNT_TOTALS)
    counts = [0] * len(COUNT_TOTALS)
    state: dict[str, Any] = {
        "last_carc_code": None,
        "last_carc_group": None,
        "last_payment_date": None,
        "last_statement_date": None,
        "last_denial_date": None,
        "first_statement_date": None,
    }
    last_patient_payment = None
    for event in events:
        deltas, counted = _amount_deltas(event)
        for position, value in enumerate(deltas):
            amounts[position] += value
        for name in counted:
            counts[_COUNT_INDEX[name]] += 1
        if deltas[1] > 0:
            last_patient_payment = event.date
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
    state.update(zip(AMOUNT_TOTALS, amounts, strict=True))
    state.update(zip(COUNT_TOTALS, counts, strict=True))
    state["_last_patient_payment"] = last_patient_payment
    return state


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
    """Balances, ages and states from the running totals (``features.snapshots._derive``), in
    integer cents; the money values are turned into dollars by ``_in_dollars``."""
    paid = snap["payer_paid"] + snap["patient_paid"]
    adjusted = snap["contractual_adjusted"] + snap["other_adjusted"]
    open_balance = cents(snap["total_charge"]) - paid - adjusted + snap["refunded"]
    owed = snap["to_patient"] - snap["patient_paid"] - snap["patient_side_adjusted"]
    patient_balance = _clip(_clip(owed, lower=0), upper=_clip(open_balance, lower=0))
    payer_balance = _clip(open_balance - patient_balance, lower=0)
    adjudicated = snap["adjudications"] > 0 or snap["payer_type"] == "self_pay"
    expected = snap["expected_amount"]
    pending = not adjudicated and expected is not None and expected == expected
    collectible = open_balance
    if pending:
        collectible = min(open_balance, _clip(cents(expected) - paid, lower=0))
    snap.update(
        paid_to_date=paid,
        adjusted_to_date=adjusted,
        open_balance=open_balance,
        patient_balance=patient_balance,
        payer_balance=payer_balance,
        responsibility="payer" if payer_balance > OPEN_BALANCE_EPSILON_CENTS else "patient",
        adjudicated=adjudicated,
        collectible_balance=_clip(collectible, lower=0),
        days_since_service=_days(as_of, snap["service_date"]),
        days_since_billed=_days(as_of, snap["billed_date"]),
    )
    snap["aging_bucket"] = aging_bucket(snap["days_since_service"])
    for name in ("last_payment", "last_statement", "last_denial", "first_statement"):
        snap[f"days_since_{name}"] = _days(as_of, snap[f"{name}_date"])
    snap["appeal_open"] = snap["appeals_filed"] > snap["appeals_closed"]
    snap["dispute_open"] = snap["disputes_opened"] > snap["disputes_closed"]
    snap["fap_pending"] = snap["fap_applications"] > snap["fap_decisions"]


def _patient_history(snap: dict[str, Any], others: OtherClaims, own_last: date | None) -> None:
    """The patient's other claims as known at the as-of date (``_patient_history``)."""
    owed_other = others.to_patient_cents
    share = (
        others.patient_paid_cents / owed_other if owed_other > OPEN_BALANCE_EPSILON_CENTS else NAN
    )
    last = others.last_patient_payment
    if own_last is not None and (last is None or own_last > last):
        last = own_last
    snap.update(
        patient_prior_claims=float(others.billed),
        patient_prior_patient_balance=_clip(owed_other, lower=0),
        patient_prior_share_paid=_clip(share, 0.0, 1.0),
        patient_prior_bad_debts=others.bad_debts,
        patient_days_since_last_payment=_days(snap["as_of"], last),
    )


def _in_dollars(snap: dict[str, Any]) -> None:
    """The money values, computed in cents, as dollars (``features.snapshots._in_dollars``)."""
    for name in _MONEY_COLUMNS:
        snap[name] = snap[name] / 100


def claim_snapshot(
    claim: ClaimRecord,
    transactions: Sequence[EventRecord],
    others: OtherClaims,
    as_of: date,
) -> dict[str, Any] | None:
    """Snapshot of ``claim`` as of ``as_of`` from its own transactions (in the order given; only
    those dated up to ``as_of`` count) and what the patient's other claims add (``OtherClaims``);
    None if the claim was not billed by then or has no open balance (the rows
    ``build_snapshots`` leaves out)."""
    if claim.billed_date > as_of:
        return None
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
    snap.update(_claim_state(_own_events(claim, transactions, as_of)))
    own_last = snap.pop("_last_patient_payment")
    _derive(snap, as_of)
    if not snap["open_balance"] > OPEN_BALANCE_EPSILON_CENTS:
        return None
    _patient_history(snap, others, own_last)
    _in_dollars(snap)
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

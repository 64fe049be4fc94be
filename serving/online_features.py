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
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import date
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.events import AMOUNT_TOTALS, COUNT_TOTALS
from features.pipeline import FeaturePipeline
from features.snapshots import AGING_BUCKETS, AGING_EDGES, OPEN_BALANCE_EPSILON_CENTS
from serving._claim_state import own_totals

NAN = math.nan
_OLDEST_BUCKET = AGING_BUCKETS[-1]


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


# A snapshot's keys, in order: the claim, its as-of date, its running state, what ``_derive``
# adds, then the patient's other claims. ``claim_snapshot`` copies this dict and stores every
# value: the copy is presized, where a dict built key by key grows (65 keys: ~2x the cost).
_SNAPSHOT: dict[str, Any] = dict.fromkeys(
    (
        *ClaimRecord._fields,
        "as_of",
        "last_carc_code",
        "last_carc_group",
        "last_payment_date",
        "last_statement_date",
        "last_denial_date",
        "first_statement_date",
        *AMOUNT_TOTALS,
        *COUNT_TOTALS,
        "paid_to_date",
        "adjusted_to_date",
        "open_balance",
        "patient_balance",
        "payer_balance",
        "responsibility",
        "adjudicated",
        "collectible_balance",
        "days_since_service",
        "days_since_billed",
        "aging_bucket",
        "days_since_last_payment",
        "days_since_last_statement",
        "days_since_last_denial",
        "days_since_first_statement",
        "appeal_open",
        "dispute_open",
        "fap_pending",
        "patient_prior_claims",
        "patient_prior_patient_balance",
        "patient_prior_share_paid",
        "patient_prior_bad_debts",
        "patient_days_since_last_payment",
    )
)


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


def aging_bucket(days: float) -> str:
    """Aging bucket of a number of days, as ``features.snapshots.aging_bucket``: the number of
    edges below ``days`` (``AGING_EDGES`` is sorted), NaN in the last bucket."""
    if days != days:
        return _OLDEST_BUCKET
    return AGING_BUCKETS[bisect_left(AGING_EDGES, days)]


def claim_snapshot(
    claim: ClaimRecord,
    transactions: Sequence[EventRecord],
    others: OtherClaims,
    as_of: date,
) -> dict[str, Any] | None:
    """Snapshot of ``claim`` as of ``as_of`` from its own transactions (in the order given; only
    those dated up to ``as_of`` count) and what the patient's other claims add (``OtherClaims``);
    None if the claim was not billed by then or has no open balance (the rows
    ``build_snapshots`` leaves out).

    Balances, ages and states as ``features.snapshots._derive`` and ``_patient_history``, money
    in integer cents until it is given out in dollars (``_in_dollars``); the keys in the order
    of ``_SNAPSHOT``. One function, the clips written out: this runs once per scored item."""
    (
        claim_id,
        patient_key,
        payer_id,
        payer_type,
        claim_type,
        place_of_service,
        service_date,
        billed_date,
        total_charge,
        expected_amount,
        patient_age,
        patient_state,
        patient_zip3,
    ) = claim
    if billed_date > as_of:
        return None
    charge = cents(total_charge)
    self_pay = payer_type == "self_pay"
    money, counts, last, own_last_payment = own_totals(
        transactions, as_of, charge if self_pay else None
    )
    payer_paid, patient_paid, contractual, other_adjusted, patient_side, refunded, to_patient = (
        money
    )
    (
        bad_debts,
        n_denials,
        n_statements,
        n_payments,
        n_patient_payments,
        appeals_filed,
        appeals_closed,
        appeals_won,
        fap_applications,
        fap_decisions,
        fap_approved,
        disputes_opened,
        disputes_closed,
        payment_plans,
        adjudications,
    ) = counts
    carc_code, carc_group, last_payment, last_statement, last_denial, first_statement = last
    # _derive, the clips written out (pandas' clip: a bound only replaces the values beyond it)
    paid = payer_paid + patient_paid
    adjusted = contractual + other_adjusted
    open_balance = charge - paid - adjusted + refunded
    owed = to_patient - patient_paid - patient_side
    patient_balance = 0 if owed < 0 else owed
    open_or_zero = 0 if open_balance < 0 else open_balance
    if patient_balance > open_or_zero:
        patient_balance = open_or_zero
    payer_balance = open_balance - patient_balance
    if payer_balance < 0:
        payer_balance = 0
    adjudicated = adjudications > 0 or self_pay
    collectible = open_balance
    if not adjudicated and expected_amount is not None and expected_amount == expected_amount:
        expected_left = cents(expected_amount) - paid
        collectible = min(open_balance, 0 if expected_left < 0 else expected_left)
    if collectible < 0:
        collectible = 0
    if not open_balance > OPEN_BALANCE_EPSILON_CENTS:
        return None
    days_since_service = NAN if service_date is None else float((as_of - service_date).days)
    if days_since_service != days_since_service:
        bucket = _OLDEST_BUCKET
    else:
        bucket = AGING_BUCKETS[bisect_left(AGING_EDGES, days_since_service)]
    # _patient_history: the other claims' totals, the latest positive patient payment of all
    prior_billed, prior_paid, owed_other, prior_bad_debts, last_patient_payment = others
    share = prior_paid / owed_other if owed_other > OPEN_BALANCE_EPSILON_CENTS else NAN
    if share < 0.0:
        share = 0.0
    elif share > 1.0:
        share = 1.0
    if own_last_payment is not None and (
        last_patient_payment is None or own_last_payment > last_patient_payment
    ):
        last_patient_payment = own_last_payment
    snap = _SNAPSHOT.copy()  # every key, in order: the stores below replace the values
    snap["claim_id"] = claim_id
    snap["patient_key"] = patient_key
    snap["payer_id"] = payer_id
    snap["payer_type"] = payer_type
    snap["claim_type"] = claim_type
    snap["place_of_service"] = place_of_service
    snap["service_date"] = service_date
    snap["billed_date"] = billed_date
    snap["total_charge"] = total_charge
    snap["expected_amount"] = expected_amount
    snap["patient_age"] = patient_age
    snap["patient_state"] = patient_state
    snap["patient_zip3"] = patient_zip3
    snap["as_of"] = as_of
    snap["last_carc_code"] = carc_code
    snap["last_carc_group"] = carc_group
    snap["last_payment_date"] = last_payment
    snap["last_statement_date"] = last_statement
    snap["last_denial_date"] = last_denial
    snap["first_statement_date"] = first_statement
    snap["payer_paid"] = payer_paid / 100
    snap["patient_paid"] = patient_paid / 100
    snap["contractual_adjusted"] = contractual / 100
    snap["other_adjusted"] = other_adjusted / 100
    snap["patient_side_adjusted"] = patient_side / 100
    snap["refunded"] = refunded / 100
    snap["to_patient"] = to_patient / 100
    snap["bad_debts"] = bad_debts
    snap["n_denials"] = n_denials
    snap["n_statements"] = n_statements
    snap["n_payments"] = n_payments
    snap["n_patient_payments"] = n_patient_payments
    snap["appeals_filed"] = appeals_filed
    snap["appeals_closed"] = appeals_closed
    snap["appeals_won"] = appeals_won
    snap["fap_applications"] = fap_applications
    snap["fap_decisions"] = fap_decisions
    snap["fap_approved"] = fap_approved
    snap["disputes_opened"] = disputes_opened
    snap["disputes_closed"] = disputes_closed
    snap["payment_plans"] = payment_plans
    snap["adjudications"] = adjudications
    snap["paid_to_date"] = paid / 100
    snap["adjusted_to_date"] = adjusted / 100
    snap["open_balance"] = open_balance / 100
    snap["patient_balance"] = patient_balance / 100
    snap["payer_balance"] = payer_balance / 100
    snap["responsibility"] = "payer" if payer_balance > OPEN_BALANCE_EPSILON_CENTS else "patient"
    snap["adjudicated"] = adjudicated
    snap["collectible_balance"] = collectible / 100
    snap["days_since_service"] = days_since_service
    snap["days_since_billed"] = float((as_of - billed_date).days)
    snap["aging_bucket"] = bucket
    snap["days_since_last_payment"] = (
        NAN if last_payment is None else float((as_of - last_payment).days)
    )
    snap["days_since_last_statement"] = (
        NAN if last_statement is None else float((as_of - last_statement).days)
    )
    snap["days_since_last_denial"] = (
        NAN if last_denial is None else float((as_of - last_denial).days)
    )
    snap["days_since_first_statement"] = (
        NAN if first_statement is None else float((as_of - first_statement).days)
    )
    snap["appeal_open"] = appeals_filed > appeals_closed
    snap["dispute_open"] = disputes_opened > disputes_closed
    snap["fap_pending"] = fap_applications > fap_decisions
    snap["patient_prior_claims"] = float(prior_billed)
    snap["patient_prior_patient_balance"] = (0 if owed_other < 0 else owed_other) / 100
    snap["patient_prior_share_paid"] = share
    snap["patient_prior_bad_debts"] = prior_bad_debts
    snap["patient_days_since_last_payment"] = (
        NAN if last_patient_payment is None else float((as_of - last_patient_payment).days)
    )
    return snap


def _values_of(names: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A snapshot's values of ``names``, as a tuple (``itemgetter`` gives one name bare)."""
    if len(names) == 1:
        only = itemgetter(names[0])
        return lambda snapshot: (only(snapshot),)
    if not names:
        return lambda snapshot: ()
    return itemgetter(*names)


class FeatureRows:
    """Snapshot dicts to the fitted pipeline's float rows, as ``FeaturePipeline.transform``:
    numbers and booleans as floats, missing as NaN, categories as level codes (unseen NaN).

    numpy converts None to NaN and any other value as ``float`` does, so the numeric values go to
    the matrix as they are; a category is looked up as it is (None maps to NaN) and, if not
    found, as its text (``str``), as the pipeline does."""

    def __init__(self, pipeline: FeaturePipeline):
        self.numeric = list(pipeline.numeric)
        self.categorical = list(pipeline.categorical)
        self.codes = {
            name: {level: float(code) for code, level in enumerate(pipeline.levels_[name])}
            for name in self.categorical
        }
        self.width = len(self.numeric) + len(self.categorical)
        self._numeric_values = _values_of(self.numeric)
        self._categories = [(name, itemgetter(name)) for name in self.categorical]
        self._lookups = {name: {**codes, None: NAN} for name, codes in self.codes.items()}

    def _code(self, name: str, value: Any) -> float:
        """The level code of one category value (NaN for missing or unseen)."""
        return NAN if value is None else self.codes[name].get(str(value), NAN)

    def row(self, snapshot: dict[str, Any]) -> list[float]:
        """One feature row (matrix column order: numeric, then categorical)."""
        values = [NAN if v is None else float(v) for v in self._numeric_values(snapshot)]
        values.extend(self._code(name, value(snapshot)) for name, value in self._categories)
        return values

    def matrix(self, snapshots: Sequence[dict[str, Any]]) -> np.ndarray:
        """The float64 feature matrix of several snapshots."""
        matrix = np.empty((len(snapshots), self.width), dtype=np.float64)
        if not snapshots:
            return matrix
        n_numeric = len(self.numeric)
        numeric = chain.from_iterable(map(self._numeric_values, snapshots))
        matrix[:, :n_numeric] = np.fromiter(
            numeric, dtype=np.float64, count=len(snapshots) * n_numeric
        ).reshape(len(snapshots), n_numeric)
        for offset, (name, value) in enumerate(self._categories, start=n_numeric):
            values = list(map(value, snapshots))
            codes = list(map(self._lookups[name].get, values))
            if None in codes:  # an unseen level, or a value that is not text
                codes = [
                    self._code(name, v) if c is None else c
                    for c, v in zip(codes, values, strict=True)
                ]
            matrix[:, offset] = codes
        return matrix

"""The online path: one claim's snapshot as of one date, and its feature row, in pure Python.

``features.snapshots.build_snapshots`` costs ~60 ms whatever the input size (frames, sorts,
as-of joins); a claim has a handful of events. ``claim_snapshot`` walks the claim's own events
and takes what the patient's other claims add as a few totals (``OtherClaims``: the history
server keeps them in a ledger, ``serving.history.ledger``). It returns exactly the values
``build_snapshots(history, [as_of], labels=None, claim_ids=[claim_id])`` computes for a history
holding the claim with those events and the patient's other claims: money is summed in integer
cents on both paths, so sums are exact and their order does not matter. Parity is proven by
``tests/serving/scoring/test_online_snapshot.py`` over generated claims and as-of dates.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from datetime import date
from typing import Any

from features.events import AMOUNT_TOTALS, COUNT_TOTALS
from features.money import cents_or_zero
from features.snapshots import AGING_BUCKETS, AGING_EDGES, OPEN_BALANCE_EPSILON_CENTS
from serving.scoring.claim_state import own_totals
from serving.scoring.records import ClaimRecord, EventRecord, OtherClaims

NAN = math.nan
_OLDEST_BUCKET = AGING_BUCKETS[-1]


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


def patient_deltas(
    type_: str, amount: float | None, party: str | None, reason: str | None
) -> tuple[int, int, int]:
    """What one transaction adds to the patient-level totals: (patient paid cents, to-patient
    cents, bad debts)."""
    if type_ == "payment":
        return (cents_or_zero(amount) if party == "patient" else 0), 0, 0
    if type_ == "transfer":
        value = cents_or_zero(amount)
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
                to_patient += cents_or_zero(claim.total_charge)
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
    charge = cents_or_zero(total_charge)
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
        expected_left = cents_or_zero(expected_amount) - paid
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

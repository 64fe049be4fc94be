"""One claim's running state from its own events, in one pass (``serving.scoring.online_snapshot``).

The online counterpart of ``features.events.event_deltas`` and the running totals
``features.events.claim_state_timeline`` keeps, for the one as-of date a snapshot needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from features.events import PATIENT_SIDE_ADJUSTMENTS

if TYPE_CHECKING:
    from serving.scoring.records import EventRecord

OwnTotals = tuple[tuple[int, ...], tuple[int, ...], tuple[Any, ...], date | None]
"""money totals in cents, counts, last denial codes and dates, latest positive patient payment"""


def own_totals(
    transactions: Sequence[EventRecord], as_of: date, self_pay_charge: int | None
) -> OwnTotals:
    """One pass over a claim's events dated up to ``as_of`` (``features.events.event_deltas``
    and their running totals): the money totals in cents (``AMOUNT_TOTALS`` order), the counts
    (``COUNT_TOTALS`` order), the last denial codes, the last (first) dates and the date of the
    latest positive patient payment. A self-pay claim's transfer of ``self_pay_charge`` cents to
    the patient on its billed date (``with_self_pay_transfers``) is counted up front.

    No sort: sums and counts do not depend on the order, dates are kept as the latest (earliest)
    seen, and a denial code replaces the kept one when dated on or after it, which is the last
    code a stable sort by date would leave (events in the order given break ties).
    """
    payer_paid = patient_paid = contractual = other_adjusted = patient_side = refunded = 0
    bad_debts = n_denials = n_statements = n_payments = n_patient_payments = 0
    appeals_filed = appeals_closed = appeals_won = fap_applications = fap_decisions = 0
    fap_approved = disputes_opened = disputes_closed = payment_plans = adjudications = 0
    to_patient = 0
    if self_pay_charge is not None:
        to_patient = self_pay_charge
        adjudications = 1
    carc_code = carc_group = carc_code_date = carc_group_date = None
    last_payment = last_statement = last_denial = first_statement = last_patient_payment = None
    for _, day, kind, amount, party, group, carc, _, reason in transactions:
        if day > as_of:
            continue
        # cents(amount), inlined: every event's amount, as in event_deltas
        value = 0 if amount is None or amount != amount else round(amount * 100)
        if kind == "statement":
            n_statements += 1
            if last_statement is None or day > last_statement:
                last_statement = day
            if first_statement is None or day < first_statement:
                first_statement = day
        elif kind == "payment":
            n_payments += 1
            if last_payment is None or day > last_payment:
                last_payment = day
            if party == "patient":
                patient_paid += value
                n_patient_payments += 1
                if value > 0 and (last_patient_payment is None or day > last_patient_payment):
                    last_patient_payment = day
            else:
                payer_paid += value
                adjudications += 1
        elif kind == "adjustment":
            if reason == "contractual" or (not reason and group == "CO" and carc == "45"):
                contractual += value
                adjudications += 1
            else:
                other_adjusted += value
            if reason in PATIENT_SIDE_ADJUSTMENTS:
                patient_side += value
            if reason == "bad_debt":
                bad_debts += 1
        elif kind == "transfer":
            to_patient += -value if party == "payer" else value
            adjudications += 1
        elif kind == "denial":
            n_denials += 1
            adjudications += 1
            if last_denial is None or day > last_denial:
                last_denial = day
            if carc is not None and (carc_code_date is None or day >= carc_code_date):
                carc_code, carc_code_date = carc, day
            if group is not None and (carc_group_date is None or day >= carc_group_date):
                carc_group, carc_group_date = group, day
        elif kind == "refund":
            refunded += value
        elif kind == "appeal":
            if not reason or reason == "filed":
                appeals_filed += 1
            elif reason == "won":
                appeals_closed += 1
                appeals_won += 1
            elif reason == "lost":
                appeals_closed += 1
        elif kind == "fap_application":
            fap_applications += 1
        elif kind == "fap_decision":
            fap_decisions += 1
            if reason == "approved":
                fap_approved += 1
        elif kind == "dispute_open":
            disputes_opened += 1
        elif kind == "dispute_closed":
            disputes_closed += 1
        elif kind == "payment_plan":
            payment_plans += 1
    return (
        (payer_paid, patient_paid, contractual, other_adjusted, patient_side, refunded, to_patient),
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
        ),
        (carc_code, carc_group, last_payment, last_statement, last_denial, first_statement),
        last_patient_payment,
    )

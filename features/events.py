"""Per-event deltas and their running totals per claim: the state a claim is in after each day."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.money import amount_cents

PATIENT_SIDE_ADJUSTMENTS = ("bad_debt", "charity", "small_balance")
CORRECTABLE_CARCS = ("16", "15", "22", "27")

# Running totals kept per claim; each is the cumulative sum of a per-event delta: money first,
# then counts (the online path in serving keeps them in this order too). Money is summed in
# integer cents, exactly and in any order; snapshots turn the totals into dollars at the end.
AMOUNT_TOTALS = (
    "payer_paid",
    "patient_paid",
    "contractual_adjusted",
    "other_adjusted",
    "patient_side_adjusted",
    "refunded",
    "to_patient",
)
COUNT_TOTALS = (
    "bad_debts",
    "n_denials",
    "n_statements",
    "n_payments",
    "n_patient_payments",
    "appeals_filed",
    "appeals_closed",
    "appeals_won",
    "fap_applications",
    "fap_decisions",
    "fap_approved",
    "disputes_opened",
    "disputes_closed",
    "payment_plans",
    "adjudications",
)
CUMULATIVE = AMOUNT_TOTALS + COUNT_TOTALS
LAST_DATES = ("last_payment_date", "last_statement_date", "last_denial_date")


def with_self_pay_transfers(claims: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """Self-pay claims are the patient's from billing: add that transfer as an internal event."""
    self_pay = claims[claims["payer_type"] == "self_pay"]
    virtual = pd.DataFrame(
        {
            "claim_id": self_pay["claim_id"].astype("string"),
            "date": self_pay["billed_date"],
            "type": pd.Series("transfer", index=self_pay.index, dtype="string"),
            "amount": self_pay["total_charge"],
            "party": pd.Series("patient", index=self_pay.index, dtype="string"),
        }
    )
    return pd.concat([virtual, transactions], ignore_index=True)


def event_deltas(transactions: pd.DataFrame) -> pd.DataFrame:
    """One row per event with the change it makes to each running total (money in cents)."""
    kind = transactions["type"].astype("string").fillna("")
    party = transactions["party"].astype("string").fillna("")
    reason = transactions["reason"].astype("string").fillna("")
    amount = amount_cents(transactions["amount"])
    carc = transactions["carc_code"].astype("string")
    group = transactions["carc_group"].astype("string").fillna("")

    def is_(mask: pd.Series) -> np.ndarray:
        return mask.to_numpy(dtype=bool, na_value=False)

    payment = is_(kind == "payment")
    patient_payment = payment & is_(party == "patient")
    adjustment = is_(kind == "adjustment")
    contractual = adjustment & (
        is_(reason == "contractual") | (is_(reason == "") & is_(group == "CO") & is_(carc == "45"))
    )
    patient_side = adjustment & is_(reason.isin(PATIENT_SIDE_ADJUSTMENTS))
    transfer = is_(kind == "transfer")
    denial = is_(kind == "denial")
    statement = is_(kind == "statement")
    appeal = is_(kind == "appeal")
    date = transactions["date"].to_numpy()
    deltas = {
        "payer_paid": np.where(payment & ~patient_payment, amount, 0),
        "patient_paid": np.where(patient_payment, amount, 0),
        "contractual_adjusted": np.where(contractual, amount, 0),
        "other_adjusted": np.where(adjustment & ~contractual, amount, 0),
        "patient_side_adjusted": np.where(patient_side, amount, 0),
        "refunded": np.where(is_(kind == "refund"), amount, 0),
        "to_patient": np.where(transfer, np.where(is_(party == "payer"), -amount, amount), 0),
        "bad_debts": (adjustment & is_(reason == "bad_debt")).astype(np.int32),
        "n_denials": denial.astype(np.int32),
        "n_statements": statement.astype(np.int32),
        "n_payments": payment.astype(np.int32),
        "n_patient_payments": patient_payment.astype(np.int32),
        "appeals_filed": (appeal & is_(reason.isin(["filed", ""]))).astype(np.int32),
        "appeals_closed": (appeal & is_(reason.isin(["won", "lost"]))).astype(np.int32),
        "appeals_won": (appeal & is_(reason == "won")).astype(np.int32),
        "fap_applications": is_(kind == "fap_application").astype(np.int32),
        "fap_decisions": is_(kind == "fap_decision").astype(np.int32),
        "fap_approved": (is_(kind == "fap_decision") & is_(reason == "approved")).astype(np.int32),
        "disputes_opened": is_(kind == "dispute_open").astype(np.int32),
        "disputes_closed": is_(kind == "dispute_closed").astype(np.int32),
        "payment_plans": is_(kind == "payment_plan").astype(np.int32),
        "adjudications": ((payment & ~patient_payment) | denial | contractual | transfer).astype(
            np.int32
        ),
        "last_payment_date": np.where(payment, date, np.datetime64("NaT")),
        "last_statement_date": np.where(statement, date, np.datetime64("NaT")),
        "last_denial_date": np.where(denial, date, np.datetime64("NaT")),
        "last_carc_code": carc.where(denial),
        "last_carc_group": transactions["carc_group"].astype("string").where(denial),
    }
    frame = pd.DataFrame(deltas, index=transactions.index)
    frame.insert(0, "date", transactions["date"].astype("datetime64[ns]"))
    frame.insert(0, "claim_id", transactions["claim_id"].astype("string"))
    return frame


def claim_state_timeline(claims: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    """Each claim's state at the end of every day with an event, sorted by date for as-of joins."""
    events = event_deltas(with_self_pay_transfers(claims, transactions))
    events = events.sort_values(["claim_id", "date"], kind="stable", ignore_index=True)
    by_claim = events.groupby("claim_id", sort=False)
    state = events[["claim_id", "date"]].copy()
    state[list(CUMULATIVE)] = by_claim[list(CUMULATIVE)].cumsum()
    carry = ["last_carc_code", "last_carc_group", *LAST_DATES]
    state[carry] = by_claim[carry].ffill()
    first_statement = events["last_statement_date"].groupby(events["claim_id"]).transform("min")
    state["first_statement_date"] = first_statement.where(state["n_statements"] > 0)
    last_of_day = ~state.duplicated(["claim_id", "date"], keep="last")
    return state[last_of_day].sort_values("date", kind="stable", ignore_index=True)

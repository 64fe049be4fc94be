"""Point-in-time snapshots of open balances, and their forward-looking labels.

A snapshot of a claim as of a date is built only from transactions dated on or before that date;
the patient's history comes from the patient's other claims as known at that date. Labels look
forward over a horizon H: payments in (as_of, as_of + H]. Snapshots whose horizon runs past the
end of the data are censored: they keep their features and get no label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.events import (
    AMOUNT_TOTALS,
    CUMULATIVE,
    LAST_DATES,
    amount_cents,
    claim_state_timeline,
    event_deltas,
    with_self_pay_transfers,
)
from features.history import History

AGING_EDGES = (30, 60, 90, 120)
AGING_BUCKETS = ("0-30", "31-60", "61-90", "91-120", "120+")
OPEN_BALANCE_EPSILON = 0.005
OPEN_BALANCE_EPSILON_CENTS = OPEN_BALANCE_EPSILON * 100
CLAIM_COLUMNS_KEPT = (
    "claim_id",
    "patient_key",
    "payer_id",
    "payer_type",
    "claim_type",
    "place_of_service",
    "service_date",
    "billed_date",
    "total_charge",
    "expected_amount",
    "patient_age",
    "patient_state",
    "patient_zip3",
)
PATIENT_CUMULATIVE = ("patient_paid", "to_patient", "patient_side_adjusted", "bad_debts")
LABEL_COLUMNS = ("recovered_amount", "recovered_fraction", "collected")
# Money columns of a snapshot: computed in integer cents (exact), given out in dollars.
MONEY_COLUMNS = (
    *AMOUNT_TOTALS,
    "paid_to_date",
    "adjusted_to_date",
    "open_balance",
    "patient_balance",
    "payer_balance",
    "collectible_balance",
    "patient_prior_patient_balance",
    "recovered_amount",
)


@dataclass(frozen=True)
class LabelConfig:
    """How labels look forward: the horizon in days and the fraction that counts as collected."""

    horizon_days: int = 90
    collected_threshold: float = 0.5


def snapshot_calendar(
    start: pd.Timestamp, end: pd.Timestamp, freq: str = "ME"
) -> list[pd.Timestamp]:
    """As-of dates between two dates on a pandas frequency (default: month ends)."""
    return list(pd.date_range(start=start, end=end, freq=freq).normalize())


def aging_bucket(days: pd.Series) -> pd.Series:
    """Aging bucket of a number of days (0-30, 31-60, 61-90, 91-120, 120+)."""
    codes = np.searchsorted(np.array(AGING_EDGES), days.to_numpy(dtype="float64"), side="left")
    return pd.Series(np.array(AGING_BUCKETS, dtype=object)[codes], index=days.index, dtype="string")


def patient_state_timeline(history: History) -> pd.DataFrame:
    """Each patient's running totals over all their claims, by date, for as-of joins."""
    events = event_deltas(with_self_pay_transfers(history.claims, history.transactions))
    keys = history.claims.set_index("claim_id")["patient_key"]
    events["patient_key"] = pd.Series(
        keys.reindex(events["claim_id"]).to_numpy(), index=events.index, dtype="string"
    )
    events["last_patient_payment_date"] = events["last_payment_date"].where(
        events["patient_paid"] > 0
    )
    events = events.sort_values(["patient_key", "date"], kind="stable", ignore_index=True)
    by_patient = events.groupby("patient_key", sort=False)
    state = events[["patient_key", "date"]].copy()
    state[[f"pt_{c}" for c in PATIENT_CUMULATIVE]] = by_patient[list(PATIENT_CUMULATIVE)].cumsum()
    state["pt_last_payment_date"] = by_patient["last_patient_payment_date"].ffill()
    last_of_day = ~state.duplicated(["patient_key", "date"], keep="last")
    return state[last_of_day].sort_values("date", kind="stable", ignore_index=True)


def _as_of_join(grid: pd.DataFrame, timeline: pd.DataFrame, key: str, on: str) -> pd.DataFrame:
    """Attach to each grid row the last timeline state of its key dated on or before ``on``."""
    grid = grid.astype({on: "datetime64[ns]"}).sort_values(on, kind="stable")
    timeline = timeline.rename(columns={"date": "_state_date"})
    joined = pd.merge_asof(
        grid,
        timeline.astype({"_state_date": "datetime64[ns]"}),
        left_on=on,
        right_on="_state_date",
        by=key,
        direction="backward",
        allow_exact_matches=True,
    )
    return joined.drop(columns="_state_date")


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype("float64")


def _derive(snap: pd.DataFrame) -> pd.DataFrame:
    """Balances, ages and states from the running totals of each snapshot, all money in cents
    (whole numbers, so every sum and difference is exact)."""
    paid = snap["payer_paid"] + snap["patient_paid"]
    adjusted = snap["contractual_adjusted"] + snap["other_adjusted"]
    snap["paid_to_date"] = paid
    snap["adjusted_to_date"] = adjusted
    charge = pd.Series(amount_cents(snap["total_charge"]), index=snap.index, dtype="float64")
    snap["open_balance"] = charge - paid - adjusted + snap["refunded"]
    owed_by_patient = snap["to_patient"] - snap["patient_paid"] - snap["patient_side_adjusted"]
    snap["patient_balance"] = owed_by_patient.clip(lower=0).clip(upper=snap["open_balance"].clip(0))
    snap["payer_balance"] = (snap["open_balance"] - snap["patient_balance"]).clip(lower=0)
    snap["responsibility"] = pd.Series(
        np.where(snap["payer_balance"] > OPEN_BALANCE_EPSILON_CENTS, "payer", "patient"),
        index=snap.index,
        dtype="string",
    )
    self_pay = (snap["payer_type"] == "self_pay").to_numpy(dtype=bool, na_value=False)
    snap["adjudicated"] = (snap["adjudications"].to_numpy() > 0) | self_pay
    expected = snap["expected_amount"].astype("float64")
    expected_cents = pd.Series(amount_cents(expected), index=snap.index, dtype="float64")
    expected_left = (expected_cents - paid).clip(lower=0)
    pending = ~snap["adjudicated"] & expected.notna()
    snap["collectible_balance"] = (
        snap["open_balance"]
        .where(~pending, np.minimum(snap["open_balance"], expected_left))
        .clip(lower=0)
    )
    as_of = snap["as_of"]
    snap["days_since_service"] = _days(as_of, snap["service_date"])
    snap["days_since_billed"] = _days(as_of, snap["billed_date"])
    snap["aging_bucket"] = aging_bucket(snap["days_since_service"])
    for name in (*LAST_DATES, "first_statement_date"):
        snap["days_since_" + name.removesuffix("_date")] = _days(as_of, snap[name])
    snap["appeal_open"] = snap["appeals_filed"] > snap["appeals_closed"]
    snap["dispute_open"] = snap["disputes_opened"] > snap["disputes_closed"]
    snap["fap_pending"] = snap["fap_applications"] > snap["fap_decisions"]
    return snap


def _patient_history(
    snap: pd.DataFrame, patient_timeline: pd.DataFrame, known: pd.DataFrame
) -> pd.DataFrame:
    """The patient's other claims as known at the as-of date (their totals less this claim's),
    money in cents."""
    snap = _as_of_join(snap, patient_timeline, "patient_key", "as_of")
    for name in PATIENT_CUMULATIVE:
        snap[f"pt_{name}"] = snap[f"pt_{name}"].fillna(0)
    paid_other = snap["pt_patient_paid"] - snap["patient_paid"]
    owed_other = snap["pt_to_patient"] - snap["to_patient"]
    snap["patient_prior_claims"] = snap["patient_key"].map(known).fillna(1).astype("float64") - 1
    snap["patient_prior_patient_balance"] = owed_other.clip(lower=0)
    snap["patient_prior_share_paid"] = (
        paid_other / owed_other.where(owed_other > OPEN_BALANCE_EPSILON_CENTS)
    ).clip(0, 1)
    snap["patient_prior_bad_debts"] = snap["pt_bad_debts"] - snap["bad_debts"]
    snap["patient_days_since_last_payment"] = _days(snap["as_of"], snap["pt_last_payment_date"])
    return snap.drop(columns=[c for c in snap.columns if c.startswith("pt_")])


def _labels(
    snap: pd.DataFrame, timeline: pd.DataFrame, labels: LabelConfig, data_end: pd.Timestamp
) -> pd.DataFrame:
    """Payments in (as_of, as_of + H], as an amount (cents), a fraction and a collected flag."""
    horizon_end = snap["as_of"] + pd.Timedelta(days=labels.horizon_days)
    ahead = snap[["claim_id"]].assign(
        _horizon_end=horizon_end.to_numpy(), _row=np.arange(len(snap))
    )
    paid_cols = timeline[["claim_id", "date", "payer_paid", "patient_paid"]]
    future = _as_of_join(ahead, paid_cols, "claim_id", "_horizon_end").sort_values("_row")
    paid_then = (future["payer_paid"].fillna(0) + future["patient_paid"].fillna(0)).to_numpy()
    recovered = paid_then - snap["paid_to_date"].to_numpy()
    censored = (horizon_end > data_end).to_numpy()
    collectible = snap["collectible_balance"].to_numpy()
    fraction = np.clip(recovered / np.maximum(collectible, 1.0), 0.0, 1.0)
    snap["censored"] = censored
    snap["recovered_amount"] = np.where(censored, np.nan, recovered)
    snap["recovered_fraction"] = np.where(censored, np.nan, fraction)
    collected = pd.array(fraction >= labels.collected_threshold, dtype="boolean")
    collected[censored] = pd.NA
    snap["collected"] = collected
    return snap


def _in_dollars(snap: pd.DataFrame) -> pd.DataFrame:
    """The money columns, computed in cents, as dollars."""
    for name in MONEY_COLUMNS:
        if name in snap.columns:
            snap[name] = snap[name].astype("float64") / 100
    return snap


def build_snapshots(
    history: History,
    as_of_dates: Sequence[pd.Timestamp],
    labels: LabelConfig | None = LabelConfig(),
    data_end: pd.Timestamp | None = None,
    claim_ids: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Snapshots of every claim with a positive balance at each as-of date, with labels if asked.

    ``data_end`` is the last date the history covers (default: its last transaction date);
    ``claim_ids`` restricts the snapshots (not the patient history) to some claims.
    """
    claims = history.claims
    timeline = claim_state_timeline(claims, history.transactions)
    patient_timeline = patient_state_timeline(history)
    if data_end is None:
        data_end = history.transactions["date"].max()
    data_end = pd.Timestamp(data_end)
    wanted = claims if claim_ids is None else claims[claims["claim_id"].isin(claim_ids)]
    base = wanted[list(CLAIM_COLUMNS_KEPT)]
    frames = []
    for as_of in (pd.Timestamp(d).normalize().as_unit("ns") for d in as_of_dates):
        known_claims = claims[claims["billed_date"] <= as_of]
        known = known_claims.groupby("patient_key", sort=False).size()
        grid = base[base["billed_date"] <= as_of].assign(as_of=as_of)
        snap = _as_of_join(grid, timeline, "claim_id", "as_of")
        snap[list(CUMULATIVE)] = snap[list(CUMULATIVE)].fillna(0)
        snap = _derive(snap)
        snap = snap[snap["open_balance"] > OPEN_BALANCE_EPSILON_CENTS]
        snap = _patient_history(snap, patient_timeline, known)
        if labels is not None:
            snap = _labels(snap.reset_index(drop=True), timeline, labels, data_end)
        frames.append(_in_dollars(snap))
        if progress is not None:
            progress(1)
    if not frames:
        return pd.DataFrame()
    result = pd.concat(frames, ignore_index=True)
    return result.sort_values(["as_of", "claim_id"], kind="stable", ignore_index=True)

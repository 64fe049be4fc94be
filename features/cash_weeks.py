"""Weeks after an as-of date, the cash each open balance brought in each week, and the
account-week rows the cash forecast model reads.

Week w of a forecast made as of a date is the days (as_of + 7(w-1), as_of + 7w]: week 1 starts
the day after the as-of date, so a payment dated on the as-of date is already known and in no
week. Cash is what payers and patients paid (``payment`` transactions), split by who paid:
``payer`` (every payment whose party is not ``patient``) and ``patient``. Refunds are not
netted: they are money going out, which a receipts forecast leaves to finance's disbursements.
Only balances open at the as-of date count: cash from claims billed later (new charges) is
outside the forecast by construction, because no row of the open A/R stands for them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.events import amount_cents

DAYS_PER_WEEK = 7
HORIZON_WEEKS = 13
SIDES = ("payer", "patient")
"""Who the cash comes from; index 0 and 1 of the side axis of every cash array."""
WEEK_FEATURES = (
    "week",
    "days_since_billed_at_week",
    "days_since_service_at_week",
    "days_since_last_statement_at_week",
    "days_since_last_payment_at_week",
)
"""Features of an account-week row besides the account's snapshot features: the week, and the
account's ages at the middle of that week (the clocks payers and statements run on)."""


def week_of(days_after: np.ndarray) -> np.ndarray:
    """The forecast week (1, 2, ...) of events ``days_after`` days after the as-of date (>= 1)."""
    return (np.asarray(days_after, dtype=np.int64) + DAYS_PER_WEEK - 1) // DAYS_PER_WEEK


def week_bounds(as_of: pd.Timestamp, weeks: int) -> pd.DataFrame:
    """Week number, first and last day of each forecast week after ``as_of``."""
    as_of = pd.Timestamp(as_of).normalize()
    number = np.arange(1, weeks + 1)
    return pd.DataFrame(
        {
            "week": number,
            "week_start": as_of + pd.to_timedelta(DAYS_PER_WEEK * (number - 1) + 1, unit="D"),
            "week_end": as_of + pd.to_timedelta(DAYS_PER_WEEK * number, unit="D"),
        }
    )


def payments_by_side(transactions: pd.DataFrame) -> pd.DataFrame:
    """Payments only: claim_id, date, amount in integer cents, side (0 payer, 1 patient)."""
    kind = transactions["type"].astype("string")
    payments = transactions[(kind == "payment").to_numpy(dtype=bool, na_value=False)]
    party = payments["party"].astype("string")
    return pd.DataFrame(
        {
            "claim_id": payments["claim_id"].astype("string").to_numpy(),
            "date": payments["date"].astype("datetime64[ns]").to_numpy(),
            "cents": amount_cents(payments["amount"]),
            "side": (party == "patient").to_numpy(dtype=bool, na_value=False).astype(np.int64),
        }
    )


def weekly_cash_cents(
    accounts: pd.DataFrame, transactions: pd.DataFrame, weeks: int = HORIZON_WEEKS
) -> np.ndarray:
    """Cash received from each account row in each of the ``weeks`` weeks after its as-of date.

    ``accounts`` holds ``claim_id`` and ``as_of`` (one row per open balance and date, as
    snapshots are); the result is int64 cents of shape (rows, weeks, 2), side 0 payer, 1
    patient. Payments on or before the as-of date, or after the last week, are not counted.
    """
    cash = np.zeros((len(accounts), weeks, len(SIDES)), dtype=np.int64)
    payments = payments_by_side(transactions)
    if len(accounts) == 0 or len(payments) == 0:
        return cash
    rows = pd.DataFrame(
        {
            "claim_id": accounts["claim_id"].astype("string").to_numpy(),
            "as_of": accounts["as_of"].astype("datetime64[ns]").to_numpy(),
            "row": np.arange(len(accounts)),
        }
    )
    joined = rows.merge(payments, on="claim_id", how="inner")
    days = (joined["date"] - joined["as_of"]).dt.days.to_numpy()
    inside = (days >= 1) & (days <= DAYS_PER_WEEK * weeks)
    week_index = week_of(days[inside]) - 1
    np.add.at(
        cash,
        (joined["row"].to_numpy()[inside], week_index, joined["side"].to_numpy()[inside]),
        joined["cents"].to_numpy()[inside],
    )
    return cash


def _column(snapshots: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(snapshots[name]).to_numpy(dtype=np.float32, na_value=np.nan)


def account_week_matrix(snapshots: pd.DataFrame, X: np.ndarray, weeks: int) -> np.ndarray:
    """Each account's feature row repeated for weeks 1..``weeks``, the week features appended.

    Row ``i * weeks + (w - 1)`` is account ``i`` in week ``w``; float32 to halve the memory of
    a matrix ``weeks`` times the size of the snapshot matrix.
    """
    n = len(snapshots)
    week = np.tile(np.arange(1, weeks + 1, dtype=np.float32), n)
    middle = (week - 0.5) * DAYS_PER_WEEK
    ages = [
        np.repeat(_column(snapshots, name), weeks) + middle
        for name in (
            "days_since_billed",
            "days_since_service",
            "days_since_last_statement",
            "days_since_last_payment",
        )
    ]
    base = np.repeat(np.asarray(X, dtype=np.float32), weeks, axis=0)
    return np.column_stack([base, week, *ages])

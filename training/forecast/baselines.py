"""The two forecasts finance uses today, for the backtest to beat.

* ``LiquidationCurve``: the share of each (payer type, aging bucket) cell's open balance that
  historically came in as cash in week 1, 2, ... after a snapshot date, per side of the cash;
  today's balances of each cell times those shares. Estimated from training snapshots whose
  weeks have all passed by the origin, over the ``months`` before it.
* ``trailing_cash``: the average weekly cash of the 13 weeks up to the origin, flat ahead. It is
  all cash, so it includes cash from claims billed in those weeks; against a forecast of
  today's open A/R it overstates the later weeks, and that is what a run rate does.

Both give an (accounts, weeks, 2) or per-group array in dollars like the model, so the same
sums and metrics apply.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.cash_model import BALANCE_COLUMN
from features.cash_weeks import DAYS_PER_WEEK, SIDES, payments_by_side
from features.errors import ArscoreError
from training.forecast.panel import Panel

CELL = ("payer_type", "aging_bucket")


def _keys(snapshots: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    parts = [snapshots[c].astype("string").fillna("<missing>") for c in columns]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key


class LiquidationCurve:
    """Cash per dollar of open balance by week and side, per (payer type, aging bucket) cell,
    falling back to the payer type's curve, then the overall one, for an unseen cell."""

    def __init__(self, months: int = 12):
        self.months = months

    def fit(self, panel: Panel, cutoff: pd.Timestamp, horizon_days: int) -> LiquidationCurve:
        """Learn the shares from snapshots whose weeks closed by ``cutoff``."""
        known = panel.closed_by(cutoff, horizon_days, self.months)
        if not known.any():
            raise ArscoreError(f"no closed weeks before {pd.Timestamp(cutoff).date()} to fit on")
        snaps = panel.snapshots[known]
        cash = panel.cash[known] / 100.0
        balance = pd.to_numeric(snaps[BALANCE_COLUMN]).to_numpy(np.float64)
        self.rates_: list[dict[str, np.ndarray]] = []
        for columns in (CELL, CELL[:1], ()):
            keys = _keys(snaps, columns) if columns else pd.Series("", index=snaps.index)
            codes, uniques = pd.factorize(keys.to_numpy())
            cash_sum = np.zeros((len(uniques), *cash.shape[1:]))
            np.add.at(cash_sum, codes, cash)
            balance_sum = np.bincount(codes, weights=balance, minlength=len(uniques))
            rates = cash_sum / np.maximum(balance_sum, 1e-9)[:, None, None]
            self.rates_.append(dict(zip(uniques, rates, strict=True)))
        self.weeks_ = cash.shape[1]
        return self

    def expected_cash(self, snapshots: pd.DataFrame) -> np.ndarray:
        """Expected dollars per balance, week and side: balance x its cell's shares."""
        out = np.zeros((len(snapshots), self.weeks_, len(SIDES)))
        filled = np.zeros(len(snapshots), dtype=bool)
        for columns, rates in zip((CELL, CELL[:1], ()), self.rates_, strict=True):
            keys = _keys(snapshots, columns) if columns else pd.Series("", index=snapshots.index)
            found = pd.Index(list(rates)).get_indexer(keys.to_numpy())
            use = (found >= 0) & ~filled
            out[use] = np.stack(list(rates.values()))[found[use]]
            filled |= use
        balance = pd.to_numeric(snapshots[BALANCE_COLUMN]).to_numpy(np.float64)
        return out * balance[:, None, None]


def trailing_cash(
    transactions: pd.DataFrame, claims: pd.DataFrame, origin: pd.Timestamp, weeks: int
) -> pd.DataFrame:
    """Average weekly cash of the ``weeks`` weeks up to ``origin`` (all claims), per payment
    with its claim's payer type and side, for grouping: payer_type, responsibility, amount."""
    payments = payments_by_side(transactions)
    days = (pd.Timestamp(origin) - pd.to_datetime(payments["date"])).dt.days.to_numpy()
    inside = (days >= 0) & (days < DAYS_PER_WEEK * weeks)
    payments = payments[inside]
    payer_type = claims.set_index("claim_id")["payer_type"].astype("string")
    return pd.DataFrame(
        {
            "payer_type": payer_type.reindex(payments["claim_id"]).to_numpy(),
            "responsibility": np.asarray(SIDES, dtype=object)[payments["side"].to_numpy()],
            "amount": payments["cents"].to_numpy() / 100.0 / weeks,
        }
    )


def trailing_sums(trailing: pd.DataFrame, by: tuple[str, ...], weeks: int) -> pd.DataFrame:
    """The trailing average per group, the same amount for every week ahead (long frame)."""
    if by:
        per_group = trailing.groupby(list(by), sort=True, dropna=False)["amount"].sum()
        per_group = per_group.reset_index()
    else:
        per_group = pd.DataFrame({"amount": [float(trailing["amount"].sum())]})
    week = pd.DataFrame({"week": np.arange(1, weeks + 1, dtype=np.int64)})
    return per_group.merge(week, how="cross")

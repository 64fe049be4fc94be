"""Split-conformal intervals per week ahead, from the errors of forecasts at rolling origins.

The nonconformity score of a forecast of one group and week is its relative error
``|actual - expected| / max(expected, floor)``. For a level L and n scores known at a cutoff,
the quantile is the ceil((n + 1) L)-th smallest score (infinite when that exceeds n): with
exchangeable errors, actual lies in expected x (1 -+ q) with probability at least L. Payer
delays that move many accounts together show up in these errors of the sums, which is why the
intervals are calibrated on sums at past origins and not by sampling accounts independently.

A forecast at origin o for week w is known once o + 7w has passed; the intervals used at a
cutoff come only from such errors.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features.cash_model import LEVELS, POOLED, Intervals

WEEK_DAYS = 7


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile of ``scores`` at ``level`` (inf if there are too few)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((len(scores) + 1) * level)
    return float(scores[rank - 1]) if 1 <= rank <= len(scores) else float("inf")


def relative_errors(records: pd.DataFrame, floor: float) -> np.ndarray:
    """The score of each record: |actual - expected| / max(expected, floor)."""
    expected = records["expected"].to_numpy(np.float64)
    actual = records["actual"].to_numpy(np.float64)
    return np.abs(actual - expected) / np.maximum(expected, floor)


def known_at(records: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    """Records whose week had passed by ``cutoff`` (origin + 7 x week <= cutoff)."""
    week_end = records["origin"] + pd.to_timedelta(WEEK_DAYS * records["week"], unit="D")
    return (week_end <= pd.Timestamp(cutoff)).to_numpy()


def _per_week(scores: np.ndarray, weeks: np.ndarray, horizon: int) -> dict[str, list[float]]:
    return {
        f"{level}": [conformal_quantile(scores[weeks == w], level) for w in range(1, horizon + 1)]
        for level in LEVELS
    }


def calibrate(records: pd.DataFrame, cutoff: pd.Timestamp, horizon: int, floor: float) -> Intervals:
    """Quantiles per grouping, group and week from the records known at ``cutoff``; each
    grouping also gets a pooled entry (all its groups' errors) for groups not seen here."""
    known = records[known_at(records, cutoff)]
    scores = relative_errors(known, floor)
    weeks = known["week"].to_numpy()
    quantiles: dict[str, dict[str, dict[str, list[float]]]] = {}
    for grouping, in_grouping in known.groupby("grouping", sort=True).indices.items():
        table = {POOLED: _per_week(scores[in_grouping], weeks[in_grouping], horizon)}
        groups = known["group"].to_numpy()[in_grouping]
        for group in sorted(set(groups)):
            rows = in_grouping[groups == group]
            table[group] = _per_week(scores[rows], weeks[rows], horizon)
        quantiles[str(grouping)] = table
    origins = known["origin"]
    calibration = {
        "cutoff": str(pd.Timestamp(cutoff).date()),
        "first_origin": str(origins.min().date()) if len(known) else None,
        "last_origin": str(origins.max().date()) if len(known) else None,
        "errors_per_week_total": [
            int(((weeks == w) & (known["grouping"] == "total").to_numpy()).sum())
            for w in range(1, horizon + 1)
        ],
    }
    return Intervals(quantiles, floor, calibration)


def total_quantiles(
    records: pd.DataFrame, origin: pd.Timestamp, horizon: int, floor: float, min_errors: int
) -> dict[float, np.ndarray]:
    """For a forecast of the total at ``origin``: q per week from the total's errors known at
    ``origin``; NaN for a week with fewer than ``min_errors`` of them."""
    total = records[(records["grouping"] == "total").to_numpy()]
    known = total[known_at(total, origin) & (total["origin"] < origin).to_numpy()]
    scores = relative_errors(known, floor)
    weeks = known["week"].to_numpy()
    out = {}
    for level in LEVELS:
        values = np.full(horizon, np.nan)
        for w in range(1, horizon + 1):
            chosen = scores[weeks == w]
            if len(chosen) >= min_errors:
                values[w - 1] = conformal_quantile(chosen, level)
        out[level] = values
    return out

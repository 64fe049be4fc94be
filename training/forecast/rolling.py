"""Forecasts at rolling origins, each from a model fitted only on what was known at its refit.

For every rolling origin (``panel.Calendar``) the latest refit's model forecasts the balances
open at the origin; the forecast and the actual cash of every week are summed per grouping
(total, payer type, side, both) into one long frame of records. At the evaluation origins the
two baselines are summed the same way (at every month-end origin, so that which origins
are evaluated can be chosen afterwards). The intervals and the metrics are computed from these
records (``intervals``, ``metrics``), so the backtest and the training's calibration share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.cash_forecast import group_sums
from features.cash_model import CashForecastModel, group_key, grouping_key
from features.cash_weeks import weekly_cash_cents
from features.history import History
from features.snapshots import build_snapshots
from training.forecast.baselines import LiquidationCurve, trailing_cash, trailing_sums
from training.forecast.config import ForecastConfig
from training.forecast.fit import fit_cash_model
from training.forecast.panel import Calendar, Panel, build_panel, calendar

GROUPINGS: tuple[tuple[str, ...], ...] = (
    (),
    ("payer_type",),
    ("responsibility",),
    ("payer_type", "responsibility"),
)
RECORD_COLUMNS = ("origin", "grouping", "group", "week", "actual", "expected")
BASELINES = ("liquidation_curve", "trailing_13_weeks")
SNAPSHOT_CHUNK = 16
"""Origins whose snapshots are built in one pass (one pass per chunk reads every transaction)."""


@dataclass
class RollingRun:
    """Records of every rolling origin, and the fit reports of every refit."""

    calendar: Calendar
    panel: Panel
    records: pd.DataFrame
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)


def _keys(frame: pd.DataFrame, by: tuple[str, ...]) -> list[str]:
    if not by:
        return [""] * len(frame)
    return [group_key(tuple(v)) for v in frame[list(by)].itertuples(index=False)]


def origin_records(
    origin: pd.Timestamp,
    snapshots: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    trailing: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Sums per grouping, group and week of each (accounts, weeks, 2) array at one origin."""
    weeks = next(iter(arrays.values())).shape[1]
    frames = []
    for by in GROUPINGS:
        sums = group_sums(snapshots, arrays, by)
        merged = sums.drop(columns=list(by)).assign(group=_keys(sums, by))
        if trailing is not None:
            flat = trailing_sums(trailing, by, weeks)
            part = pd.DataFrame(
                {
                    "group": _keys(flat, by),
                    "week": flat["week"].to_numpy(),
                    "trailing_13_weeks": flat["amount"].to_numpy(),
                }
            )
            merged = merged.merge(part, on=["group", "week"], how="left")
        merged.insert(0, "grouping", grouping_key(by))
        frames.append(merged)
    records = pd.concat(frames, ignore_index=True)
    records.insert(0, "origin", pd.Timestamp(origin))
    return records


def run_rolling(
    history: History,
    config: ForecastConfig,
    origins: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    until: pd.Timestamp | None = None,
) -> RollingRun:
    """Fit at every refit, forecast every rolling origin (up to ``until``, default all),
    record forecasts and actuals."""
    dates = calendar(history, config, origins)
    panel = build_panel(history, dates.training, config.horizon_weeks)
    last = dates.last_origin if until is None else pd.Timestamp(until)
    wanted = [o for o in dates.rolling if o <= last]
    frames, fits, models = [], {}, {}
    for start in range(0, len(wanted), SNAPSHOT_CHUNK):
        chunk = wanted[start : start + SNAPSHOT_CHUNK]
        snapshots = build_snapshots(history, chunk, labels=None)
        for origin in chunk:
            refit = dates.refit_for(origin)
            if refit not in models:
                models[refit], fits[str(refit.date())] = fit_cash_model(panel, refit, config, {})
                if progress is not None:
                    progress("refits", len(models), sum(r <= last for r in dates.refits))
            rows = (snapshots["as_of"] == origin).to_numpy()
            frames.append(
                _forecast_origin(
                    history,
                    panel,
                    config,
                    models[refit],
                    origin,
                    snapshots[rows].reset_index(drop=True),
                    origin.is_month_end,
                )
            )
    records = pd.concat(frames, ignore_index=True)
    return RollingRun(dates, panel, records, fits)


def _forecast_origin(
    history: History,
    panel: Panel,
    config: ForecastConfig,
    model: CashForecastModel,
    origin: pd.Timestamp,
    snapshots: pd.DataFrame,
    month_end: bool,
) -> pd.DataFrame:
    """The records of one origin (with the baselines at a month end)."""
    weeks = config.horizon_weeks
    arrays = {
        "actual": weekly_cash_cents(snapshots, history.transactions, weeks) / 100.0,
        "expected": model.expected_cash(snapshots, weeks),
    }
    trailing = None
    if month_end:
        curve = LiquidationCurve(config.liquidation_months).fit(panel, origin, config.horizon_days)
        arrays["liquidation_curve"] = curve.expected_cash(snapshots)
        trailing = trailing_cash(history.transactions, history.claims, origin, weeks)
    return origin_records(origin, snapshots, arrays, trailing)

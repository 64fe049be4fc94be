"""Forecasts at rolling origins, each from a model fitted only on what was known at its refit.

For every rolling origin (``panel.Calendar``) the latest refit's model forecasts the balances
open at the origin; the forecast and the actual cash of every week are summed per grouping
(total, payer type, side, both) into one long frame of records. At the evaluation origins the
two baselines are summed the same way. The intervals and the metrics are computed from these
records (``intervals``, ``metrics``), so the backtest and the training's calibration share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.cash_forecast import sums_by_group
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


@dataclass
class RollingRun:
    """Records of every rolling origin, and the fit reports of every refit."""

    calendar: Calendar
    panel: Panel
    records: pd.DataFrame
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)


def _keyed(sums: pd.DataFrame, by: tuple[str, ...], value: str) -> pd.DataFrame:
    keys = (
        [group_key(tuple(v)) for v in sums[list(by)].itertuples(index=False)]
        if by
        else [""] * len(sums)
    )
    return pd.DataFrame(
        {"group": keys, "week": sums["week"].to_numpy(), value: sums["amount"].to_numpy()}
    )


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
        merged = None
        for name, cash in arrays.items():
            part = _keyed(sums_by_group(snapshots, cash, by), by, name)
            merged = part if merged is None else merged.merge(part, on=["group", "week"])
        if trailing is not None:
            part = _keyed(trailing_sums(trailing, by, weeks), by, "trailing_13_weeks")
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
) -> RollingRun:
    """Fit at every refit, forecast every rolling origin, record forecasts and actuals."""
    dates = calendar(history, config, origins)
    panel = build_panel(history, dates.training, config.horizon_weeks)
    evaluation = set(dates.evaluation)
    frames, fits = [], {}
    for number, refit in enumerate(dates.refits):
        segment = [o for o in dates.rolling if dates.refit_for(o) == refit]
        if not segment:
            continue
        model, report = fit_cash_model(panel, refit, config, {})
        fits[str(refit.date())] = report
        snapshots = build_snapshots(history, segment, labels=None)
        for origin in segment:
            rows = (snapshots["as_of"] == origin).to_numpy()
            frames.append(
                _forecast_origin(
                    history,
                    panel,
                    config,
                    model,
                    origin,
                    snapshots[rows].reset_index(drop=True),
                    origin in evaluation,
                )
            )
        if progress is not None:
            progress("refits", number + 1, len(dates.refits))
    records = pd.concat(frames, ignore_index=True)
    return RollingRun(dates, panel, records, fits)


def _forecast_origin(
    history: History,
    panel: Panel,
    config: ForecastConfig,
    model: CashForecastModel,
    origin: pd.Timestamp,
    snapshots: pd.DataFrame,
    evaluated: bool,
) -> pd.DataFrame:
    """The records of one origin (with the baselines at an evaluation origin)."""
    weeks = config.horizon_weeks
    arrays = {
        "actual": weekly_cash_cents(snapshots, history.transactions, weeks) / 100.0,
        "expected": model.expected_cash(snapshots, weeks),
    }
    trailing = None
    if evaluated:
        curve = LiquidationCurve(config.liquidation_months).fit(panel, origin, config.horizon_days)
        arrays["liquidation_curve"] = curve.expected_cash(snapshots)
        trailing = trailing_cash(history.transactions, history.claims, origin, weeks)
    return origin_records(origin, snapshots, arrays, trailing)

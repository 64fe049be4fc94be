"""The dates of a rolling-origin run and the labelled account-week panel models are fitted on.

Every forecast is made "as of" an origin and may use only what was known then: snapshots are
point-in-time by construction (``features.snapshots``), and a training snapshot's 13 weeks of
cash are a label only once they have all passed (``as_of + 7 x horizon <= cutoff``). The cash
of later weeks is read here for evaluation, never for fitting at an earlier cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.cash_weeks import weekly_cash_cents
from features.errors import ArscoreError
from features.history import History
from features.snapshots import build_snapshots, snapshot_calendar
from training.forecast.config import ForecastConfig


@dataclass(frozen=True)
class Calendar:
    """The dates of a rolling-origin run.

    ``last_origin`` is the latest date whose forecast weeks have all passed by ``data_end``;
    ``training`` the snapshot dates fits draw their rows from; ``refits`` the month ends at which
    the model is refitted (the first one where enough labels have closed, then every
    ``refit_months``-th); ``rolling`` every origin forecast, weekly from the first refit to
    ``last_origin``, plus the evaluation origins; ``evaluation`` the monthly origins reported on
    (the latest ``origins`` month ends up to ``last_origin``). Each origin is forecast by the
    latest refit on or before it. Refits and weekly origins count forward from the first refit,
    so where they fall never depends on how far the data goes.
    """

    data_end: pd.Timestamp
    last_origin: pd.Timestamp
    training: list[pd.Timestamp]
    refits: list[pd.Timestamp]
    rolling: list[pd.Timestamp]
    evaluation: list[pd.Timestamp]

    def refit_for(self, origin: pd.Timestamp) -> pd.Timestamp:
        """The refit that forecasts an origin: the latest on or before it."""
        return max(r for r in self.refits if r <= origin)


def first_fit_date(training: list[pd.Timestamp], config: ForecastConfig) -> pd.Timestamp:
    """The first cutoff at which ``valid_dates`` + 1 training dates have closed labels."""
    needed = config.valid_dates + 1
    if len(training) < needed:
        raise ArscoreError(
            f"the history has {len(training)} training snapshot dates after the warm-up; "
            f"a fit needs at least {needed} whose {config.horizon_weeks} weeks have passed"
        )
    return training[needed - 1] + pd.Timedelta(days=config.horizon_days)


def calendar(history: History, config: ForecastConfig, origins: int | None = None) -> Calendar:
    """The dates of a run over ``history`` (``origins`` evaluation origins, default config's)."""
    origins = config.origins if origins is None else origins
    data_end = pd.Timestamp(history.transactions["date"].max()).normalize()
    last_origin = data_end - pd.Timedelta(days=config.horizon_days)
    start = pd.Timestamp(history.claims["billed_date"].min()) + pd.Timedelta(
        days=config.warmup_days
    )
    training = snapshot_calendar(start, last_origin, config.snapshot_freq)
    month_ends = snapshot_calendar(first_fit_date(training, config), last_origin, "ME")
    if len(month_ends) < origins:
        raise ArscoreError(
            f"the history allows {len(month_ends)} monthly origins with a fitted model and "
            f"{config.horizon_weeks} weeks of actuals after them (up to {last_origin.date()}); "
            f"asked for {origins}: use fewer origins or a longer history"
        )
    evaluation = month_ends[-origins:]
    refits = month_ends[:: config.refit_months]
    step = pd.Timedelta(days=config.calibration_step_days)
    count = int((last_origin - refits[0]) / step) + 1
    weekly = [refits[0] + k * step for k in range(count)]
    rolling = sorted(set(weekly) | set(evaluation))
    return Calendar(data_end, last_origin, training, refits, rolling, evaluation)


@dataclass(frozen=True)
class Panel:
    """Snapshots at the training dates and the cash each balance brought in each week after.

    ``cash`` is int64 cents of shape (rows, weeks, 2): side 0 payer, 1 patient.
    """

    snapshots: pd.DataFrame
    cash: np.ndarray

    def closed_by(self, cutoff: pd.Timestamp, horizon_days: int, months: int) -> np.ndarray:
        """Rows whose weeks have all passed by ``cutoff`` (labels known then), within the
        ``months`` before it (0: no limit)."""
        as_of = self.snapshots["as_of"]
        known = (as_of + pd.Timedelta(days=horizon_days) <= cutoff).to_numpy()
        if months:
            known = known & (as_of > cutoff - pd.DateOffset(months=months)).to_numpy()
        return known


def build_panel(history: History, dates: list[pd.Timestamp], weeks: int) -> Panel:
    """Point-in-time snapshots at ``dates`` and their weekly cash by side."""
    snapshots = build_snapshots(history, dates, labels=None)
    if len(snapshots) == 0:
        raise ArscoreError("no balance is open at any training snapshot date")
    return Panel(snapshots, weekly_cash_cents(snapshots, history.transactions, weeks))

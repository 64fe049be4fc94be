"""The backtest of the cash forecast: rolling monthly origins against finance's two baselines.

``run_backtest`` fits at every refit, forecasts every rolling origin (``rolling``), calibrates
the intervals of each evaluation origin on the errors known at it (``intervals``) and reports
per week ahead (``metrics``). Each forecast uses only what was known at its origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from features.history import History
from training.forecast.config import ForecastConfig
from training.forecast.metrics import (
    backtest_summary,
    horizon_table,
    side_table,
    with_total_intervals,
)
from training.forecast.rolling import RollingRun, run_rolling


@dataclass(frozen=True)
class BacktestResult:
    """Per-week figures at the evaluation origins, per side, the headline, the raw run."""

    table: pd.DataFrame
    sides: pd.DataFrame
    summary: dict[str, float]
    forecasts: pd.DataFrame
    run: RollingRun


def evaluate_run(run: RollingRun, config: ForecastConfig) -> BacktestResult:
    """The backtest figures of a finished rolling run."""
    forecasts = with_total_intervals(run, run.calendar.evaluation, config)
    table = horizon_table(forecasts)
    weekly = with_total_intervals(run, run.calendar.rolling, config)
    return BacktestResult(table, side_table(run), backtest_summary(table, weekly), forecasts, run)


def run_backtest(
    history: History,
    config: ForecastConfig,
    origins: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BacktestResult:
    """Rolling-origin backtest over ``history`` with ``origins`` monthly evaluation origins."""
    return evaluate_run(run_rolling(history, config, origins, progress), config)

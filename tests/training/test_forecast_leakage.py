"""Leakage of the cash forecast: nothing dated after an origin changes a forecast made at it.

The rolling-origin run is the code path of both the backtest and the training's interval
calibration; the final forecast is ``features.cash_forecast.forecast_cash``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.cash_forecast import forecast_cash
from features.cash_model import Intervals
from features.history import History
from tests.forecast_factories import mutate_after, small_history, tiny_forecast_config
from training.forecast.fit import fit_cash_model
from training.forecast.intervals import total_quantiles
from training.forecast.panel import build_panel, calendar
from training.forecast.rolling import run_rolling

ORIGIN = pd.Timestamp("2025-09-30")
KNOWN_COLUMNS = [
    "origin",
    "grouping",
    "group",
    "week",
    "expected",
    "liquidation_curve",
    "trailing_13_weeks",
]


@pytest.fixture(scope="module")
def history() -> History:
    return small_history()


@pytest.fixture(scope="module")
def mutated(history) -> History:
    return History(history.claims, mutate_after(history.transactions, ORIGIN, seed=5))


@pytest.fixture(scope="module")
def runs(history, mutated):
    config = tiny_forecast_config()
    return run_rolling(history, config, until=ORIGIN), run_rolling(mutated, config, until=ORIGIN)


def test_run_rolling_events_after_origin_change_no_forecast_or_baseline(runs):
    before, after = (run.records[KNOWN_COLUMNS].reset_index(drop=True) for run in runs)
    assert before["origin"].max() == ORIGIN
    assert before["liquidation_curve"].notna().sum() > 0
    pd.testing.assert_frame_equal(before, after)


def test_run_rolling_events_after_origin_change_no_interval_at_the_origin(runs):
    config = tiny_forecast_config()
    before, after = (
        total_quantiles(run.records, ORIGIN, config.horizon_weeks, config.score_floor, 1)
        for run in runs
    )
    for level, values in before.items():
        assert pd.notna(values).all()
        pd.testing.assert_series_equal(pd.Series(values), pd.Series(after[level]))


def test_run_rolling_mutation_is_not_a_no_op_on_actuals_after_the_origin(runs):
    """Negative control: the actual cash of weeks ending after the origin does move."""
    before, after = (run.records for run in runs)
    late = (before["origin"] + pd.to_timedelta(7 * before["week"], unit="D") > ORIGIN).to_numpy()
    assert (before["actual"].to_numpy()[late] != after["actual"].to_numpy()[late]).sum() > 50


def test_forecast_cash_events_after_as_of_change_nothing(history, mutated):
    config = tiny_forecast_config()
    dates = calendar(history, config)
    model, _ = fit_cash_model(build_panel(history, dates.training, 13), ORIGIN, config, {})
    model.intervals = Intervals({"total": {"*": {"0.8": [0.3] * 13, "0.95": [0.6] * 13}}})
    before = forecast_cash(history, model, ORIGIN)
    after = forecast_cash(mutated, model, ORIGIN)
    assert before["expected"].sum() > 0
    pd.testing.assert_frame_equal(before, after)

"""The cash forecast: backtest figures and baselines, intervals, the saved and registered model.

One training run on a small generated history (rolling origins, final fit, registry) is shared
by the module: seconds-long fits, one thread.
"""

from __future__ import annotations

import datetime
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from features.cash_forecast import forecast_cash, forecast_frame
from features.cash_model import CashForecastModel, Intervals
from features.cash_weeks import SIDES
from features.errors import ArscoreError
from features.model import artifact_sha256
from tests.forecast_factories import small_history, tiny_forecast_config
from training import registry
from training.forecast.baselines import LiquidationCurve, trailing_cash
from training.forecast.intervals import conformal_quantile
from training.forecast.panel import Panel
from training.forecast.train import train_forecast

CREATED = datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC)
AS_OF = pd.Timestamp("2026-06-30")


@pytest.fixture(scope="module")
def history():
    return small_history()


@pytest.fixture(scope="module")
def trained(history, tmp_path_factory, migrated_registry_file):
    """One forecast training registered in a fresh SQLite registry."""
    root = tmp_path_factory.mktemp("forecast")
    database = root / "registry" / "mlflow.db"
    database.parent.mkdir()
    shutil.copyfile(migrated_registry_file, database)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARSCORE_MLFLOW_TRACKING_URI", f"sqlite:///{database.as_posix()}")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(root)
        result = train_forecast(history, tiny_forecast_config(), root / "run", created_at=CREATED)
        version = registry.client().get_model_version("arscore-cash", result.version)
        aliases = registry.client().get_registered_model("arscore-cash").aliases
        yield SimpleNamespace(result=result, version=version, aliases=aliases)


def test_backtest_small_history_realized_coverage_is_near_nominal(trained):
    """Split-conformal intervals hold their level out of sample. Tolerances: 10 points at 80%
    and 5 at 95%, over every weekly origin with calibrated intervals (several hundred
    forecasts of the total, correlated across neighbouring weeks)."""
    summary = trained.result.backtest.summary
    assert summary["weekly_origins_calibrated"] > 300
    assert abs(summary["weekly_origins_coverage_80"] - 0.80) <= 0.10
    assert abs(summary["weekly_origins_coverage_95"] - 0.95) <= 0.05
    assert summary["coverage_95"] >= summary["coverage_80"]


def test_backtest_small_history_computes_both_baselines_at_every_origin_and_week(trained):
    backtest = trained.result.backtest
    forecasts = backtest.forecasts
    assert forecasts["origin"].nunique() == 4
    assert len(forecasts) == 4 * 13
    for baseline in ("liquidation_curve", "trailing_13_weeks"):
        assert forecasts[baseline].notna().all()
        assert (forecasts[baseline] > 0).all()
        assert np.isfinite(backtest.table[f"wape_{baseline}"]).all()
    assert not np.allclose(forecasts["liquidation_curve"], forecasts["expected"])
    flat = forecasts.groupby("origin")["trailing_13_weeks"].nunique()
    assert (flat == 1).all()  # a run rate: the same amount every week ahead
    assert list(backtest.table["week"]) == [*map(str, range(1, 14)), "1-13"]


def test_train_forecast_registers_a_challenger_with_its_sha_and_key_metrics(trained):
    version, result = trained.version, trained.result
    assert trained.aliases["challenger"] == version.version
    assert version.tags[registry.TAG_SHA] == artifact_sha256(result.model_dir)
    assert json.loads(version.tags[registry.TAG_KEY_METRICS])["wape_model"][1] == "lower"
    assert float(version.tags["test_wape_model"]) == pytest.approx(
        result.backtest.summary["wape_model"]
    )
    assert result.model_card[0].read_text(encoding="utf-8").count("| 1-13 |") == 1


def test_cash_model_saved_directory_loads_and_forecasts_the_same(trained, history):
    model = CashForecastModel.load(trained.result.model_dir)
    frame = forecast_cash(history, model, AS_OF, by="payer_type,responsibility")
    total = frame[frame["payer_type"].isna()]
    groups = frame[frame["payer_type"].notna()]
    assert list(total["week"]) == list(range(1, 14))
    by_week = groups.groupby("week")["expected"].sum().to_numpy()
    np.testing.assert_allclose(by_week, total["expected"].to_numpy(), atol=0.05 * len(groups))
    ordered = frame[["lower_95", "lower_80", "expected", "upper_80", "upper_95"]].to_numpy()
    assert (np.diff(ordered, axis=1) >= -1e-9).all()
    assert set(groups["responsibility"]) == set(SIDES)
    direct = forecast_frame(model, *_snapshots(history, AS_OF))
    np.testing.assert_allclose(direct["expected"], total["expected"])


def _snapshots(history, as_of):
    from features.snapshots import build_snapshots

    return build_snapshots(history, [as_of], labels=None), as_of


def test_cash_model_load_other_feature_set_is_refused(trained, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained.result.model_dir, copy)
    metadata = json.loads((copy / "metadata.json").read_text())
    metadata["feature_set_version"] = "0"
    (copy / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ArscoreError, match="feature set"):
        CashForecastModel.load(copy)


def test_comparison_problems_cash_model_higher_wape_is_refused():
    spec = json.dumps({"wape_model": ["WAPE weeks 1-13", "lower"]})

    def version(number: str, wape: float) -> SimpleNamespace:
        tags = {"test_wape_model": str(wape), registry.TAG_KEY_METRICS: spec}
        tags |= {"test_start": "2026-03-31", "test_end": "2026-06-30", "test_fingerprint": "f"}
        return SimpleNamespace(version=number, tags=tags)

    assert registry.comparison_problems(version("2", 0.20), version("1", 0.25)) == []
    problems = registry.comparison_problems(version("2", 0.30), version("1", 0.25))
    assert problems and "above champion version 1" in problems[0]


def test_conformal_quantile_needs_enough_scores_for_the_level():
    scores = np.arange(1.0, 20.0)  # 19 scores
    assert conformal_quantile(scores, 0.95) == 19.0  # rank ceil(20 x 0.95) = 19
    assert conformal_quantile(scores[:18], 0.95) == float("inf")
    assert conformal_quantile(scores, 0.80) == 16.0  # rank ceil(20 x 0.8) = 16


def test_intervals_group_not_seen_in_calibration_takes_the_pooled_quantile():
    intervals = Intervals(
        {"payer_type": {"*": {"0.8": [0.5] * 13}, "medicare": {"0.8": [0.2] * 13}}}
    )
    assert intervals.quantile("payer_type", "medicare", 0.8, 13)[0] == 0.2
    assert intervals.quantile("payer_type", "tricare_va", 0.8, 13)[0] == 0.5
    restored = Intervals.from_dict(json.loads(json.dumps(intervals.to_dict())))
    assert restored.quantiles == intervals.quantiles


def _panel(as_of: str, cells: list[tuple[str, str, float]], cash: list[list[float]]) -> Panel:
    snapshots = pd.DataFrame(
        {
            "as_of": pd.Timestamp(as_of),
            "payer_type": [c[0] for c in cells],
            "aging_bucket": [c[1] for c in cells],
            "open_balance": [c[2] for c in cells],
        }
    )
    weekly = np.zeros((len(cells), 2, 2), dtype=np.int64)
    weekly[:, :, 0] = np.asarray(cash) * 100
    return Panel(snapshots, weekly)


def test_liquidation_curve_shares_of_each_cell_times_todays_balances():
    panel = _panel(
        "2025-01-31",
        [
            ("commercial", "0-30", 1_000.0),
            ("commercial", "0-30", 3_000.0),
            ("medicaid", "0-30", 500),
        ],
        [[100.0, 300.0], [300.0, 100.0], [50.0, 0.0]],
    )
    curve = LiquidationCurve(months=0).fit(panel, pd.Timestamp("2025-03-31"), horizon_days=14)
    today = pd.DataFrame(
        {
            "payer_type": ["commercial", "medicaid", "medicaid"],
            "aging_bucket": ["0-30", "0-30", "31-60"],  # the last cell is unseen: payer type's
            "open_balance": [2_000.0, 1_000.0, 1_000.0],
        }
    )
    expected = curve.expected_cash(today)
    np.testing.assert_allclose(expected[0, :, 0], [200.0, 200.0])  # (400/4000) x 2000
    np.testing.assert_allclose(expected[1, :, 0], [100.0, 0.0])
    np.testing.assert_allclose(expected[2, :, 0], [100.0, 0.0])
    assert expected[:, :, 1].sum() == 0


def test_liquidation_curve_snapshots_whose_weeks_are_open_are_not_used():
    panel = _panel("2025-03-20", [("commercial", "0-30", 1_000.0)], [[100.0, 0.0]])
    with pytest.raises(ArscoreError, match="no closed weeks"):
        LiquidationCurve(months=0).fit(panel, pd.Timestamp("2025-03-31"), horizon_days=14)


def test_trailing_cash_is_the_average_week_of_the_13_weeks_up_to_the_origin(history):
    origin = pd.Timestamp("2026-03-31")
    trailing = trailing_cash(history.transactions, history.claims, origin, 13)
    tx = history.transactions
    inside = (tx["type"] == "payment") & (tx["date"] > origin - pd.Timedelta(days=91))
    inside &= tx["date"] <= origin
    assert trailing["amount"].sum() == pytest.approx(tx.loc[inside, "amount"].sum() / 13)

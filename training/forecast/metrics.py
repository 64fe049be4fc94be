"""Backtest figures per week ahead: WAPE, bias, pinball loss and interval coverage.

Over a set of origins and one week w (or all weeks pooled, "1-13"):

* WAPE = sum |actual - forecast| / sum actual; bias = sum (forecast - actual) / sum actual;
* pinball: the mean over the quantile levels 0.025, 0.1, 0.5, 0.9, 0.975 (lower_95, lower_80,
  expected, upper_80, upper_95) of the summed pinball loss over the summed actual cash;
* coverage: the share of origins whose actual lies inside the 80% and the 95% interval, over
  the origins where the interval was calibrated (at least ``min_calibration_errors`` errors).

Baselines are point forecasts: WAPE and bias only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.forecast.config import ForecastConfig
from training.forecast.intervals import total_quantiles
from training.forecast.rolling import BASELINES, RollingRun

PINBALL_LEVELS = {
    0.025: "lower_95",
    0.1: "lower_80",
    0.5: "expected",
    0.9: "upper_80",
    0.975: "upper_95",
}


def with_total_intervals(
    run: RollingRun, origins: list[pd.Timestamp], config: ForecastConfig
) -> pd.DataFrame:
    """Total records at ``origins`` with the intervals calibrated on errors known at each."""
    records = run.records
    total = records[(records["grouping"] == "total").to_numpy()]
    frames = []
    for origin in origins:
        rows = total[(total["origin"] == origin).to_numpy()].sort_values("week").copy()
        q = total_quantiles(
            records,
            origin,
            config.horizon_weeks,
            config.score_floor,
            config.min_calibration_errors,
        )
        expected = rows["expected"].to_numpy()
        position = rows["week"].to_numpy() - 1
        for level, values in q.items():
            name = f"{round(level * 100)}"
            rows[f"lower_{name}"] = np.clip(expected * (1 - values[position]), 0, None)
            rows[f"upper_{name}"] = expected * (1 + values[position])
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def _pinball(actual: np.ndarray, frame: pd.DataFrame) -> float:
    losses = []
    for tau, column in PINBALL_LEVELS.items():
        diff = actual - frame[column].to_numpy()
        losses.append(np.sum(np.maximum(tau * diff, (tau - 1) * diff)))
    return float(np.mean(losses) / actual.sum())


def _figures(frame: pd.DataFrame) -> dict[str, float]:
    actual = frame["actual"].to_numpy()
    total = actual.sum()
    row: dict[str, float] = {"origins": float(frame["origin"].nunique()), "actual": total}
    for name in ("expected", *[b for b in BASELINES if b in frame.columns]):
        forecast = frame[name].to_numpy()
        label = "model" if name == "expected" else name
        row[f"wape_{label}"] = float(np.abs(actual - forecast).sum() / total)
        row[f"bias_{label}"] = float((forecast - actual).sum() / total)
    calibrated = frame["lower_95"].notna() & frame["lower_80"].notna()
    row["calibrated"] = float(calibrated.sum())
    if calibrated.any():
        chosen = frame[calibrated.to_numpy()]
        a = chosen["actual"].to_numpy()
        row["pinball_model"] = _pinball(a, chosen)
        for level in ("80", "95"):
            inside = (a >= chosen[f"lower_{level}"]) & (a <= chosen[f"upper_{level}"])
            row[f"coverage_{level}"] = float(inside.mean())
    else:
        row.update(pinball_model=np.nan, coverage_80=np.nan, coverage_95=np.nan)
    return row


def horizon_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per week ahead and a pooled "1-N" row."""
    rows = []
    for week, chosen in frame.groupby("week", sort=True):
        rows.append({"week": str(week), **_figures(chosen)})
    rows.append({"week": f"1-{frame['week'].max()}", **_figures(frame)})
    return pd.DataFrame(rows)


def side_table(run: RollingRun) -> pd.DataFrame:
    """WAPE and bias over all weeks at the evaluation origins, per side of the cash."""
    records = run.records
    evaluation = records["origin"].isin(run.calendar.evaluation).to_numpy()
    sides = records[evaluation & (records["grouping"] == "responsibility").to_numpy()]
    rows = []
    for side, chosen in sides.groupby("group", sort=True):
        figures = _figures(chosen.assign(lower_80=np.nan, lower_95=np.nan))
        rows.append(
            {
                "side": side,
                **{k: v for k, v in figures.items() if k.startswith(("wape", "bias", "actual"))},
            }
        )
    return pd.DataFrame(rows)


def backtest_summary(table: pd.DataFrame, weekly: pd.DataFrame) -> dict[str, float]:
    """Headline figures: pooled WAPEs, the reduction against the liquidation curve, coverage
    at the monthly origins and at every weekly origin with calibrated intervals."""
    pooled = table.iloc[-1]
    weekly_pooled = horizon_table(weekly).iloc[-1] if len(weekly) else None
    summary = {
        "wape_model": float(pooled["wape_model"]),
        "wape_liquidation_curve": float(pooled["wape_liquidation_curve"]),
        "wape_trailing_13_weeks": float(pooled["wape_trailing_13_weeks"]),
        "bias_model": float(pooled["bias_model"]),
        "pinball_model": float(pooled["pinball_model"]),
        "coverage_80": float(pooled["coverage_80"]),
        "coverage_95": float(pooled["coverage_95"]),
        "wape_reduction_vs_liquidation": 1.0
        - float(pooled["wape_model"]) / float(pooled["wape_liquidation_curve"]),
    }
    if weekly_pooled is not None:
        summary["weekly_origins_coverage_80"] = float(weekly_pooled["coverage_80"])
        summary["weekly_origins_coverage_95"] = float(weekly_pooled["coverage_95"])
        summary["weekly_origins_calibrated"] = float(weekly_pooled["calibrated"])
    return summary

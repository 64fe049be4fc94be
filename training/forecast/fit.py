"""Fitting the cash forecast boosters on account-week rows known at a cutoff.

For each side of the cash (payer, patient) and each part of the formulation
(``features.cash_model.FORMULATION_PARTS``) one LightGBM booster is early-stopped on the latest
``valid_dates`` training dates and trained on the dates before them. Rows are balances open at a
training snapshot date, one per week after it; every label is cash inside the 13 weeks, so only
snapshots whose weeks closed by the cutoff are used (``Panel.closed_by``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from features.cash_model import (
    BALANCE_COLUMN,
    FORMULATION_PARTS,
    CashForecastModel,
    Intervals,
)
from features.cash_weeks import SIDES, WEEK_FEATURES, account_week_matrix
from features.errors import ArscoreError
from features.pipeline import FeaturePipeline
from training.forecast.config import ForecastConfig
from training.forecast.panel import Panel


@dataclass(frozen=True)
class Rows:
    """Account-week rows of one split: matrix, balance per row, cash per row and side."""

    matrix: np.ndarray
    balance: np.ndarray
    cash: np.ndarray  # dollars, shape (rows, 2)


def _rows(pipeline: FeaturePipeline, snapshots: pd.DataFrame, cash: np.ndarray) -> Rows:
    weeks = cash.shape[1]
    matrix = account_week_matrix(snapshots, pipeline.transform(snapshots), weeks)
    balance = np.repeat(pd.to_numeric(snapshots[BALANCE_COLUMN]).to_numpy(np.float64), weeks)
    return Rows(matrix, balance.clip(min=0.01), cash.reshape(-1, len(SIDES)) / 100.0)


def _target(formulation: str, part: str, rows: Rows, side: int) -> tuple[Any, ...]:
    """(label, weight, row mask, objective) of one booster."""
    cash = rows.cash[:, side]
    everything = np.ones(len(cash), dtype=bool)
    if formulation == "rate":
        return cash / rows.balance, rows.balance, everything, "poisson"
    if formulation == "dollars":
        return cash, None, everything, "poisson"
    if part == "payment":
        return (cash > 0).astype(np.float64), rows.balance, everything, "binary"
    paid = cash > 0
    return cash / rows.balance, rows.balance, paid, "gamma"


def _dataset(rows: Rows, label, weight, mask, names, categorical, reference=None):
    return lightgbm.Dataset(
        rows.matrix[mask],
        label=label[mask],
        weight=None if weight is None else weight[mask],
        feature_name=names,
        categorical_feature=categorical,
        reference=reference,
        free_raw_data=True,
    )


def _sample(snapshots: pd.DataFrame, cap_accounts: int, seed: int) -> np.ndarray:
    if len(snapshots) <= cap_accounts:
        return np.arange(len(snapshots))
    chosen = np.random.default_rng(seed).choice(len(snapshots), cap_accounts, replace=False)
    return np.sort(chosen)


def fit_cash_model(
    panel: Panel, cutoff: pd.Timestamp, config: ForecastConfig, metadata: dict[str, Any]
) -> tuple[CashForecastModel, dict[str, Any]]:
    """Boosters fitted on what was known at ``cutoff``; intervals are added by the caller."""
    known = panel.closed_by(cutoff, config.horizon_days, config.train_months)
    dates = sorted(panel.snapshots.loc[known, "as_of"].unique())
    if len(dates) < config.valid_dates + 1:
        raise ArscoreError(
            f"cutoff {pd.Timestamp(cutoff).date()}: {len(dates)} training dates with closed "
            f"labels, a fit needs {config.valid_dates + 1}"
        )
    valid_from = dates[-config.valid_dates]
    as_of = panel.snapshots["as_of"]
    index = {
        "train": np.flatnonzero(known & (as_of < valid_from).to_numpy()),
        "valid": np.flatnonzero(known & (as_of >= valid_from).to_numpy()),
    }
    cap = max(1, config.max_train_rows // config.horizon_weeks)
    index["train"] = index["train"][_sample(panel.snapshots.iloc[index["train"]], cap, config.seed)]
    train_snaps = panel.snapshots.iloc[index["train"]].reset_index(drop=True)
    pipeline = FeaturePipeline().fit(train_snaps)
    rows = {
        name: _rows(
            pipeline, panel.snapshots.iloc[positions].reset_index(drop=True), panel.cash[positions]
        )
        for name, positions in index.items()
    }
    names = [*pipeline.feature_names_, *WEEK_FEATURES]
    categorical = list(pipeline.categorical_indices_)
    boosters: dict[str, lightgbm.Booster] = {}
    report: dict[str, Any] = {"train_dates": [str(pd.Timestamp(d).date()) for d in dates]}
    for side_index, side in enumerate(SIDES):
        for part in FORMULATION_PARTS[config.formulation]:
            label, weight, mask, objective = _target(
                config.formulation, part, rows["train"], side_index
            )
            train_set = _dataset(rows["train"], label, weight, mask, names, categorical)
            v_label, v_weight, v_mask, _ = _target(
                config.formulation, part, rows["valid"], side_index
            )
            valid_set = _dataset(
                rows["valid"], v_label, v_weight, v_mask, names, categorical, train_set
            )
            params = config.lightgbm.booster_params(objective, config.seed)
            booster = lightgbm.train(
                params,
                train_set,
                num_boost_round=config.lightgbm.num_boost_round,
                valid_sets=[valid_set],
                valid_names=["validation"],
                callbacks=[
                    lightgbm.early_stopping(config.lightgbm.early_stopping_rounds, verbose=False)
                ],
            )
            best = booster.best_iteration or booster.current_iteration()
            boosters[f"{side}_{part}"] = lightgbm.Booster(
                model_str=booster.model_to_string(num_iteration=best)
            )
            report[f"{side}_{part}_iterations"] = int(best)
    full_metadata = {
        **metadata,
        "formulation": config.formulation,
        "horizon_weeks": config.horizon_weeks,
        "cutoff": str(pd.Timestamp(cutoff).date()),
    }
    model = CashForecastModel(pipeline, boosters, Intervals({}), full_metadata)
    return model, report

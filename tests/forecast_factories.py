"""A small generated history and a seconds-long forecast config for the cash forecast tests."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from features.history import History, validate_history
from tests.factories import TEST_KEY
from training.forecast.config import ForecastConfig, load_forecast_config

SMALL_END = datetime.date(2026, 9, 30)


def small_history(n_claims: int = 2_500, seed: int = 11) -> History:
    """30 months of a 2,500-claim synthetic history: long enough for 4 monthly origins with
    calibrated intervals behind them."""
    from training.synthetic import GeneratorConfig, generate_history

    claims, transactions = generate_history(
        GeneratorConfig(n_claims=n_claims, seed=seed, months=30, end_date=SMALL_END)
    )
    return validate_history(claims, transactions, TEST_KEY)


def tiny_forecast_config(**overrides: object) -> ForecastConfig:
    """Few, small trees, a refit every 3 months, one thread (deterministic and quick)."""
    settings: dict = {
        "origins": 4,
        "refit_months": 3,
        "lightgbm": {
            "num_boost_round": 15,
            "num_leaves": 7,
            "min_data_in_leaf": 20,
            "num_threads": 1,
        },
    }
    settings.update(overrides)
    return load_forecast_config(overrides=settings)


def mutate_after(transactions: pd.DataFrame, cutoff: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Change amounts and dates of, drop half of, and add payments after ``cutoff``."""
    rng = np.random.default_rng(seed)
    future = (transactions["date"] > cutoff).to_numpy()
    mutated = transactions.copy()
    mutated.loc[future, "amount"] = (
        mutated.loc[future, "amount"] * rng.uniform(0.1, 3.0, future.sum())
    ).round(2)
    mutated.loc[future, "date"] = mutated.loc[future, "date"] + pd.to_timedelta(
        rng.integers(0, 120, future.sum()), unit="D"
    )
    kept = mutated[~future | (rng.random(len(mutated)) < 0.5)]
    added = kept.sample(300, random_state=seed, replace=True).copy()
    added["type"] = pd.array(["payment"] * len(added), dtype="string")
    added["amount"] = rng.uniform(10, 5_000, len(added)).round(2)
    added["date"] = cutoff + pd.to_timedelta(rng.integers(1, 200, len(added)), unit="D")
    return pd.concat([kept, added], ignore_index=True)

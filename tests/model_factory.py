"""A small synthetic history and a quickly fitted model, for the batch and distributed tests."""

from __future__ import annotations

from functools import cache

import lightgbm
import numpy as np
import pandas as pd

from features.history import History, validate_history
from features.model import Calibrator, CollectibilityModel
from features.pipeline import FeaturePipeline
from features.snapshots import build_snapshots, snapshot_calendar
from tests.factories import TEST_KEY
from training.synthetic import GeneratorConfig, generate_history

AS_OF = pd.Timestamp("2026-06-30")


@cache
def small_history(n_claims: int = 3_000, seed: int = 3) -> History:
    """A validated synthetic history (cached: tests must not modify it)."""
    claims, transactions = generate_history(GeneratorConfig(n_claims=n_claims, seed=seed))
    return validate_history(claims, transactions, TEST_KEY)


def labelled_snapshots(history: History, months: int = 12) -> pd.DataFrame:
    """Labelled month-end snapshots of the last ``months`` as-of dates of a history."""
    calendar = snapshot_calendar(
        history.claims["billed_date"].min(), history.transactions["date"].max()
    )
    return build_snapshots(history, calendar[-months:])


def fit_small_model(
    snapshots: pd.DataFrame, rounds: int = 25, seed: int = 1
) -> CollectibilityModel:
    """A CollectibilityModel fitted in about a second on labelled snapshots (not for quality)."""
    rows = snapshots[snapshots["collected"].notna().to_numpy()]
    pipeline = FeaturePipeline(min_level_count=5).fit(rows)
    X = pipeline.transform(rows)
    y = rows["collected"].to_numpy(dtype=np.float64)
    fraction = rows["recovered_fraction"].to_numpy(dtype=np.float64)
    params = {"num_leaves": 15, "learning_rate": 0.1, "verbosity": -1, "seed": seed}
    params |= {"min_data_in_leaf": 20, "deterministic": True, "force_row_wise": True}

    def booster(label: np.ndarray, objective: str) -> lightgbm.Booster:
        data = lightgbm.Dataset(
            X,
            label=label,
            feature_name=list(pipeline.feature_names_),
            categorical_feature=list(pipeline.categorical_indices_),
        )
        return lightgbm.train({**params, "objective": objective}, data, num_boost_round=rounds)

    classifier = booster(y, "binary")
    calibrator = Calibrator("sigmoid").fit(classifier.predict(X), y)
    return CollectibilityModel(
        pipeline=pipeline,
        booster=classifier,
        calibrator=calibrator,
        recovery_booster=booster(fraction, "cross_entropy"),
        metadata={"model_name": "arscore-test"},
    )


@cache
def small_model() -> CollectibilityModel:
    """The model fitted on the cached small history (cached: tests must not modify it)."""
    return fit_small_model(labelled_snapshots(small_history()))


def open_balances(history: History, as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    """Unlabelled snapshots of every open balance as of one date."""
    return build_snapshots(history, [as_of], labels=None)

"""The compiled tree kernels equal LightGBM: contributions (pred_contrib) and predictions.

Every check runs on 100,000 hard rows (tests/features/tree_cases.py: values on split
thresholds, NaN, zeros and near-zeros, infinities, unseen and malformed categories) and asserts
that the kernels ran (no fallback), so that an equality never comes from LightGBM itself.
"""

from __future__ import annotations

from functools import cache

import lightgbm
import numpy as np
import pytest

from features.model import CollectibilityModel
from features.trees.dump import read_model_text
from features.trees.forest import CompiledBooster
from tests.features.tree_cases import (
    GENERATED_CATEGORICAL,
    generated_booster,
    generated_rows,
    hard_rows,
)
from tests.model_factory import labelled_snapshots, open_balances, small_history
from training.config import TrainingConfig

ROWS = 100_000
CONTRIBUTION_TOLERANCE = 1e-9
PREDICTION_TOLERANCE = 1e-12


def assert_equal_to_lightgbm(booster: lightgbm.Booster, X: np.ndarray, **options) -> None:
    """Contributions, raw scores and predictions of the kernels against LightGBM's, all rows."""
    compiled = CompiledBooster(booster, **options)
    assert compiled.unsupported is None
    expected = booster.predict(X, pred_contrib=True)
    got = compiled.contributions(X)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= CONTRIBUTION_TOLERANCE
    for raw in (True, False):
        difference = compiled.predict(X, raw_score=raw) - booster.predict(X, raw_score=raw)
        assert np.abs(difference).max() <= PREDICTION_TOLERANCE


@pytest.mark.parametrize(
    ("variant", "objective"),
    [("nan", "binary"), ("zero", "cross_entropy"), ("none", "binary"), ("deep", "cross_entropy")],
)
def test_compiled_booster_generated_model_hard_rows_equal_lightgbm(variant, objective):
    booster = generated_booster(variant, objective)
    base = generated_rows(5_000, seed=21)
    X = hard_rows(booster, base, GENERATED_CATEGORICAL, ROWS, seed=22)
    assert_equal_to_lightgbm(booster, X)


def test_compiled_booster_without_tables_hard_rows_equal_lightgbm():
    """Every leaf through the extend/unwind recursion instead of its table."""
    booster = generated_booster("nan")
    X = hard_rows(booster, generated_rows(5_000, seed=23), GENERATED_CATEGORICAL, 20_000, seed=24)
    compiled = CompiledBooster(booster, table_max_features=0)
    assert compiled.describe()["tabulated_leaves"] == 0
    assert_equal_to_lightgbm(booster, X, table_max_features=0)


def test_compiled_booster_tables_and_recursion_in_one_forest_equal_lightgbm():
    """Leaves of up to 4 path features tabulated, longer ones recursed, in the same trees."""
    booster = generated_booster("deep", "cross_entropy")
    described = CompiledBooster(booster, table_max_features=4).describe()
    assert described["recursive_leaves"] > 0
    assert described["tabulated_leaves"] > 0
    X = hard_rows(booster, generated_rows(5_000, seed=25), GENERATED_CATEGORICAL, 20_000, seed=26)
    assert_equal_to_lightgbm(booster, X, table_max_features=4)


def test_compiled_booster_missing_types_present_in_generated_models():
    """The generated models hold every missing type and multi-word category bitsets."""
    seen_missing = set()
    most_words = 0
    for variant in ("nan", "zero", "none"):
        for tree in read_model_text(generated_booster(variant).model_to_string()).trees:
            numerical = (tree.decision_type & 1) == 0
            seen_missing |= set(((tree.decision_type[numerical] >> 2) & 3).tolist())
            if tree.cat_boundaries.size:
                most_words = max(most_words, int(np.diff(tree.cat_boundaries).max()))
    assert seen_missing == {0, 1, 2}
    assert most_words >= 2


def test_compiled_booster_trees_of_more_than_64_leaves_equal_lightgbm():
    """Past 64 leaves the kernels walk each tree instead of using leaf bitmasks."""
    booster = generated_booster("wide", "binary")
    assert max(t.num_leaves for t in read_model_text(booster.model_to_string()).trees) > 64
    X = hard_rows(booster, generated_rows(5_000, seed=27), GENERATED_CATEGORICAL, 20_000, seed=28)
    assert_equal_to_lightgbm(booster, X)


@cache
def demo_like_model() -> tuple[CollectibilityModel, np.ndarray]:
    """Both boosters with the training config's LightGBM parameters (what `make demo` uses,
    fewer rounds) on the small synthetic history, and its open balances' feature rows."""
    from tests.model_factory import fit_small_model

    snapshots = labelled_snapshots(small_history())
    small = fit_small_model(snapshots)
    rows = snapshots[snapshots["collected"].notna().to_numpy()]
    X = small.features(rows)
    config = TrainingConfig()
    names = list(small.pipeline.feature_names_)

    def fit(label: np.ndarray, objective: str) -> lightgbm.Booster:
        data = lightgbm.Dataset(
            X,
            label=label,
            feature_name=names,
            categorical_feature=list(small.pipeline.categorical_indices_),
        )
        params = config.lightgbm.booster_params(objective, config.seed)
        params["min_data_in_leaf"] = 40  # the small history has few rows per leaf
        return lightgbm.train(params, data, num_boost_round=8)

    model = CollectibilityModel(
        small.pipeline,
        fit(rows["collected"].to_numpy(np.float64), "binary"),
        small.calibrator,
        fit(rows["recovered_fraction"].to_numpy(np.float64), "cross_entropy"),
        {"model_name": "arscore-test-demo-like"},
    )
    return model, model.features(open_balances(small_history()))


@pytest.mark.parametrize("which", ["classifier", "recovery"])
def test_compiled_booster_demo_like_model_hard_rows_equal_lightgbm(which):
    model, base = demo_like_model()
    booster = model.booster if which == "classifier" else model.recovery_booster
    categorical = tuple(model.pipeline.categorical_indices_)
    assert categorical  # the pipeline's categories reach the boosters as categorical splits
    X = hard_rows(booster, base, categorical, ROWS, seed=31)
    assert_equal_to_lightgbm(booster, X)


def test_collectibility_model_compiled_methods_equal_lightgbm():
    model, X = demo_like_model()
    np.testing.assert_allclose(
        model.contributions(X), model.booster.predict(X, pred_contrib=True), rtol=0, atol=1e-9
    )
    raw = model.booster.predict(X)
    np.testing.assert_array_equal(model.probability(X), model.calibrator.transform(raw))
    fraction = np.clip(model.recovery_booster.predict(X), 0.0, 1.0)
    np.testing.assert_array_equal(model.recovery_fraction(X, num_threads=1), fraction)
    assert model.compiled_boosters()[0].unsupported is None

"""What the compiled tree kernels do not take goes to LightGBM, with a log line; the rest of
their contract: threads, pickling, the model text reader's errors."""

from __future__ import annotations

import logging
import pickle

import lightgbm
import numpy as np
import pandas as pd
import pytest

from features.errors import ArscoreError
from features.trees.dump import read_model_text
from features.trees.forest import CompiledBooster
from tests.features.tree_cases import GENERATED_CATEGORICAL, generated_booster, generated_rows
from tests.model_factory import small_model

FALLBACK_LOGGER = "features.trees.forest"


def _fit(params: dict, X: np.ndarray, y: np.ndarray, rounds: int = 4) -> lightgbm.Booster:
    params = {"verbosity": -1, "num_threads": 1, "min_data_in_leaf": 5, **params}
    return lightgbm.train(params, lightgbm.Dataset(X, label=y), num_boost_round=rounds)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"objective": "multiclass", "num_class": 3}, "trees per iteration"),
        ({"objective": "regression", "linear_tree": True}, "linear tree"),
        (
            {
                "objective": "regression",
                "boosting": "rf",
                "bagging_fraction": 0.5,
                "bagging_freq": 1,
            },
            "random forest",
        ),
    ],
)
def test_compiled_booster_unsupported_model_falls_back_with_log(params, reason, caplog):
    X = generated_rows(600, seed=1)[:, [0, 2, 5, 6]]
    y = np.arange(600) % 3 if params["objective"] == "multiclass" else X[:, 1] + X[:, 3]
    booster = _fit(params, X, y.astype(np.float64))
    with caplog.at_level(logging.WARNING, logger=FALLBACK_LOGGER):
        compiled = CompiledBooster(booster, "test booster")
    assert compiled.unsupported is not None and reason in compiled.unsupported
    assert any(reason in record.getMessage() for record in caplog.records)
    if params["objective"] != "multiclass" and not params.get("linear_tree"):
        np.testing.assert_array_equal(
            compiled.contributions(X), booster.predict(X, pred_contrib=True)
        )
    np.testing.assert_array_equal(compiled.predict(X), booster.predict(X))


def test_compiled_booster_data_frame_input_falls_back_with_log(caplog):
    booster = generated_booster("nan")
    X = generated_rows(300, seed=2)
    frame = pd.DataFrame(X, columns=[f"Column_{i}" for i in range(X.shape[1])])
    compiled = CompiledBooster(booster)
    with caplog.at_level(logging.WARNING, logger=FALLBACK_LOGGER):
        got = compiled.contributions(frame)
    assert any("DataFrame" in record.getMessage() for record in caplog.records)
    np.testing.assert_array_equal(got, booster.predict(frame, pred_contrib=True))


def test_compiled_booster_wrong_width_raises_lightgbm_error():
    compiled = CompiledBooster(generated_booster("nan"))
    with pytest.raises(lightgbm.basic.LightGBMError, match="number of features"):
        compiled.contributions(generated_rows(10, seed=3)[:, :5])


def test_compiled_booster_threads_give_identical_results():
    booster = generated_booster("nan")
    compiled = CompiledBooster(booster)
    X = generated_rows(3_001, seed=4)
    np.testing.assert_array_equal(
        compiled.contributions(X, num_threads=1), compiled.contributions(X, num_threads=2)
    )
    np.testing.assert_array_equal(
        compiled.predict(X, num_threads=1), compiled.predict(X, num_threads=2)
    )


def test_compiled_booster_single_leaf_trees_equal_lightgbm():
    """A booster that cannot split (too few rows per leaf) has one-leaf trees only."""
    X = generated_rows(50, seed=5)
    booster = _fit({"objective": "regression", "min_data_in_leaf": 100}, X, X[:, 2], rounds=3)
    compiled = CompiledBooster(booster)
    assert compiled.unsupported is None
    np.testing.assert_array_equal(compiled.contributions(X), booster.predict(X, pred_contrib=True))
    np.testing.assert_array_equal(compiled.predict(X), booster.predict(X))


def test_compiled_booster_empty_input_gives_empty_results():
    compiled = CompiledBooster(generated_booster("nan"))
    empty = np.empty((0, 8))
    assert compiled.contributions(empty).shape == (0, 9)
    assert compiled.predict(empty).shape == (0,)


def test_collectibility_model_pickle_drops_kernels_and_rebuilds_them():
    model = small_model()
    X = np.zeros((3, len(model.pipeline.feature_names_)))
    before = model.contributions(X)
    copy = pickle.loads(pickle.dumps(model))
    assert "_compiled" not in copy.__dict__
    np.testing.assert_array_equal(copy.contributions(X), before)
    assert copy.compiled_boosters()[0].unsupported is None


def test_read_model_text_not_a_model_raises():
    with pytest.raises(ArscoreError, match="not a LightGBM text model"):
        read_model_text("hello\nworld\n")


def test_read_model_text_tree_with_missing_values_raises():
    text = generated_booster("nan").model_to_string()
    broken = text.replace("leaf_value=", "leaf_value=1 ", 1)
    with pytest.raises(ArscoreError, match="leaf_value"):
        read_model_text(broken)


def test_read_model_text_reads_every_tree_and_category_bitset():
    booster = generated_booster("nan")
    dump = read_model_text(booster.model_to_string())
    assert len(dump.trees) == booster.num_trees()
    assert dump.num_features == 8
    assert dump.output_transform() == "sigmoid"
    categorical = [t for t in dump.trees if t.cat_boundaries.size]
    assert categorical and all(t.cat_threshold.size == t.cat_boundaries[-1] for t in categorical)
    assert set(GENERATED_CATEGORICAL) >= {
        int(f) for t in categorical for f in t.split_feature[(t.decision_type & 1) == 1]
    }

"""The shared feature pipeline: learned levels, unseen categories, 1-row and many-row parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from features.errors import ArscoreError
from features.pipeline import CATEGORICAL_FEATURES, NUMERIC_FEATURES, FeaturePipeline


def _snapshot_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 50.0, n) for name in NUMERIC_FEATURES})
    frame["days_since_last_payment"] = np.where(
        rng.random(n) < 0.3, np.nan, rng.integers(0, 400, n)
    )
    frame["payer_type"] = pd.array(rng.choice(["commercial", "medicare", "self_pay"], n), "string")
    frame["claim_type"] = pd.array(rng.choice(["professional", "institutional"], n), "string")
    frame["place_of_service"] = pd.array(rng.choice(["11", "21", "22", "23"], n), "string")
    codes = rng.choice(["16", "50", "29", None], n)
    frame["last_carc_code"] = pd.array(codes, "string")
    frame["aging_bucket"] = pd.array(rng.choice(["0-30", "31-60", "120+"], n), "string")
    frame["patient_state"] = pd.array(rng.choice(["TX", "NY", "CO"], n), "string")
    frame["responsibility"] = pd.array(rng.choice(["payer", "patient"], n), "string")
    return frame


def test_feature_pipeline_one_row_equals_same_row_of_many():
    frame = _snapshot_frame(2_000)
    pipeline = FeaturePipeline().fit(frame)
    full = pipeline.transform(frame)
    for position in (0, 17, 1_999):
        one = pipeline.transform(frame.iloc[[position]])
        np.testing.assert_array_equal(one, full[[position]])


def test_feature_pipeline_unseen_and_missing_category_become_nan():
    frame = _snapshot_frame(500)
    pipeline = FeaturePipeline().fit(frame)
    odd = frame.iloc[[0, 1]].copy()
    odd["payer_type"] = pd.array(["martian_insurance", None], "string")
    column = pipeline.feature_names_.index("payer_type")
    assert np.isnan(pipeline.transform(odd)[:, column]).all()


def test_feature_pipeline_rare_levels_are_not_learned():
    frame = _snapshot_frame(500)
    frame.loc[0, "patient_state"] = "WY"
    pipeline = FeaturePipeline(min_level_count=5).fit(frame)
    assert "WY" not in pipeline.levels_["patient_state"]
    assert pipeline.levels_["patient_state"] == ["CO", "NY", "TX"]


def test_feature_pipeline_codes_map_back_to_levels():
    frame = _snapshot_frame(300)
    pipeline = FeaturePipeline().fit(frame)
    matrix = pipeline.transform(frame)
    column = pipeline.feature_names_.index("payer_type")
    labels = [pipeline.category_label("payer_type", code) for code in matrix[:20, column]]
    assert labels == frame["payer_type"].iloc[:20].tolist()


def test_feature_pipeline_layout_numeric_then_categorical():
    pipeline = FeaturePipeline().fit(_snapshot_frame(300))
    assert pipeline.feature_names_ == [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    assert pipeline.categorical_indices_[0] == len(NUMERIC_FEATURES)
    assert list(pipeline.get_feature_names_out()) == pipeline.feature_names_


def test_feature_pipeline_follows_estimator_contract():
    pipeline = FeaturePipeline(max_levels=3)
    assert clone(pipeline).get_params()["max_levels"] == 3
    assert not hasattr(pipeline, "levels_")


def test_feature_pipeline_missing_column_is_a_clear_error():
    frame = _snapshot_frame(100)
    pipeline = FeaturePipeline().fit(frame)
    with pytest.raises(ArscoreError, match="open_balance"):
        pipeline.transform(frame.drop(columns="open_balance"))

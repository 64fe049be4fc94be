"""Reasons: wording a person can read, chosen by the model's exact contributions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.pipeline import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from serving.scoring.reasons import (
    WORDING,
    ReasonTexts,
    day_range,
    describe,
    reason,
    reasons_for_row,
    top_features,
)


def test_reason_days_since_service_reads_like_the_example():
    found = reason("days_since_service", 143.0, -0.8)
    assert found.sentence == "balance is 143 days old (over 120 days lowers collectibility)"
    assert (found.value, found.direction) == ("143 days", "lowers")


def test_reason_positive_contribution_raises():
    assert reason("n_patient_payments", 2, 0.3).sentence == (
        "patient made 2 payments (this raises collectibility)"
    )


@pytest.mark.parametrize(
    ("days", "text"), [(0, "30 days or less"), (30, "30 days or less"), (31, "31 to 60 days")]
)
def test_day_range_follows_aging_buckets(days, text):
    assert day_range(days) == text


@pytest.mark.parametrize(
    ("feature", "value", "shown", "phrase"),
    [
        ("payer_type", "medicare_advantage", "Medicare Advantage", "payer is Medicare Advantage"),
        ("last_carc_code", "16", "CARC 16 (missing information)", None),
        ("place_of_service", "23", "23 (emergency room)", None),
        ("appeal_open", True, "yes", "an appeal is open"),
        ("appeal_open", False, "no", "no appeal is open"),
        ("patient_prior_share_paid", 0.4, "40%", "patient paid 40% of earlier balances"),
        ("days_since_last_payment", math.nan, "none", "no payment received yet"),
        ("n_denials", 1, "1", "claim was denied 1 time"),
        ("aging_bucket", "91-120", "91-120 days", "balance is in the 91-120 days aging bucket"),
    ],
)
def test_describe_shows_values_as_a_person_reads_them(feature, value, shown, phrase):
    found_shown, found_phrase, _ = describe(feature, value)
    assert found_shown == shown
    if phrase is not None:
        assert found_phrase == phrase


def test_every_model_feature_has_wording():
    assert set(NUMERIC_FEATURES) | set(CATEGORICAL_FEATURES) <= set(WORDING)


def test_describe_never_shows_a_raw_identifier_for_unknown_feature():
    shown, phrase, _ = describe("some_future_feature", None)
    assert shown == "none" and "some future feature" in phrase


def test_top_features_largest_absolute_first_zero_and_bias_excluded():
    contributions = np.array([0.1, -0.5, 0.0, 0.3, 0.0, 9.0])  # last column is the bias
    assert top_features(contributions, limit=4) == [1, 3, 0]


def test_top_features_limit_respected():
    assert top_features(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 0.0]), limit=2) == [4, 3]


def test_reasons_for_row_uses_the_raw_value_of_each_feature():
    names = ["open_balance", "days_since_service"]
    values = {"open_balance": 250.0, "days_since_service": 45.0}
    found = reasons_for_row(names, np.array([0.2, -0.4, 1.0]), values.__getitem__)
    assert [r.feature for r in found] == ["days_since_service", "open_balance"]
    assert found[1].sentence == "open balance is $250.00 (this raises collectibility)"


def test_reason_texts_for_batch_at_most_four_per_row_from_the_model(tiny_model_and_rows):
    model, snapshots = tiny_model_and_rows
    texts = ReasonTexts(model)(snapshots, model.features(snapshots))
    assert len(texts) == len(snapshots)
    assert all(1 <= len(row) <= 4 for row in texts)
    assert all(s.endswith("collectibility)") for row in texts for s in row)


@pytest.fixture(scope="module")
def tiny_model_and_rows():
    from tests.model_factory import fit_small_model, labelled_snapshots, small_history

    snapshots = labelled_snapshots(small_history(), months=4)
    model = fit_small_model(snapshots, rounds=10)
    return model, snapshots.iloc[:50].reset_index(drop=True).pipe(pd.DataFrame)

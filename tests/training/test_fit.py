"""Fitting: calibration maps, the model's arithmetic, save/load, baselines, the config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.errors import ArscoreError
from features.model import Calibrator, CollectibilityModel, artifact_sha256
from training.config import load_config, parse_overrides
from training.fit import RuleOfThumb, choose_calibrator, fit_models
from training.split import time_split


def _logit(p):
    return np.log(p) - np.log1p(-p)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def known_probabilities():
    """Outcomes drawn from known probabilities, and a miscalibrated (too confident) score."""
    rng = np.random.default_rng(5)
    truth = rng.uniform(0.02, 0.98, 60_000)
    y = (rng.uniform(size=truth.size) < truth).astype(float)
    overconfident = _sigmoid(2.0 * _logit(truth))
    return truth, y, overconfident


@pytest.fixture(scope="module")
def fitted(tiny_snapshots):
    config = load_config(
        overrides={
            "lightgbm": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
            "recovery": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
        }
    )
    split = time_split(tiny_snapshots, config.horizon_days)
    return split, fit_models(split, config, {"model_name": "test"})


def test_calibrator_sigmoid_overconfident_scores_recovers_known_slope(known_probabilities):
    truth, y, overconfident = known_probabilities
    calibrator = Calibrator("sigmoid").fit(overconfident, y)
    assert calibrator.slope_ == pytest.approx(0.5, abs=0.03)
    assert calibrator.intercept_ == pytest.approx(0.0, abs=0.03)
    grid = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    calibrated = calibrator.transform(_sigmoid(2.0 * _logit(grid)))
    np.testing.assert_allclose(calibrated, grid, atol=0.02)


def test_calibrator_isotonic_overconfident_scores_recovers_true_probability(known_probabilities):
    truth, y, overconfident = known_probabilities
    calibrator = Calibrator("isotonic").fit(overconfident, y)
    grid = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    calibrated = calibrator.transform(_sigmoid(2.0 * _logit(grid)))
    np.testing.assert_allclose(calibrated, grid, atol=0.04)


def test_calibrator_isotonic_inside_fitted_range_keeps_ranking(known_probabilities):
    _, y, overconfident = known_probabilities
    calibrator = Calibrator("isotonic").fit(overconfident, y)
    inside = np.linspace(calibrator.x_[0], calibrator.x_[-1], 1_000)
    assert np.all(np.diff(calibrator.transform(inside)) > 0)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrator_dict_round_trip_through_json_gives_identical_output(
    method, known_probabilities
):
    _, y, overconfident = known_probabilities
    calibrator = Calibrator(method).fit(overconfident[:5_000], y[:5_000])
    restored = Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    probe = np.linspace(0.0, 1.0, 101)
    np.testing.assert_array_equal(restored.transform(probe), calibrator.transform(probe))


def test_calibrator_unknown_method_raises():
    with pytest.raises(ArscoreError, match="isotonic or sigmoid"):
        Calibrator("beta")  # type: ignore[arg-type]


def test_choose_calibrator_auto_picks_lowest_cross_fitted_log_loss(known_probabilities):
    _, y, overconfident = known_probabilities
    calibrator, report = choose_calibrator(overconfident[:8_000], y[:8_000], "auto", 5, 0)
    losses = {m: report[m]["log_loss"] for m in ("isotonic", "sigmoid")}
    assert report["chosen"] == min(losses, key=losses.get)
    assert calibrator.method == report["chosen"]
    assert losses[report["chosen"]] < report["uncalibrated"]["log_loss"]


def test_collectibility_model_probability_applies_calibrator_to_booster(fitted):
    split, models = fitted
    model = models.model
    model_with_known_map = CollectibilityModel(
        model.pipeline,
        model.booster,
        Calibrator.from_dict({"method": "sigmoid", "slope": 0.5, "intercept": -1.0}),
        model.recovery_booster,
    )
    X = model.features(split.test)
    raw = model.booster.predict(X)
    expected = _sigmoid(0.5 * _logit(raw) - 1.0)
    np.testing.assert_allclose(model_with_known_map.probability(X), expected, rtol=1e-9)
    np.testing.assert_allclose(model.raw_score(X), _logit(raw), rtol=1e-6)


def test_collectibility_model_contributions_sum_to_raw_score(fitted):
    split, models = fitted
    X = models.model.features(split.test.iloc[:200])
    contributions = models.model.contributions(X)
    assert contributions.shape == (200, X.shape[1] + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), models.model.raw_score(X), atol=1e-9)


def test_collectibility_model_expected_recovery_between_zero_and_balance(fitted):
    split, models = fitted
    X = models.model.features(split.test)
    expected = models.model.expected_recovery(split.test, X)
    balance = split.test["collectible_balance"].to_numpy()
    assert np.all(expected >= 0)
    assert np.all(expected <= balance + 1e-9)
    assert expected.sum() > 0


def test_collectibility_model_score_one_row_per_snapshot_with_claim_ids(fitted):
    split, models = fitted
    scores = models.model.score(split.test)
    assert list(scores.columns) == ["claim_id", "probability_collected", "expected_recovery"]
    assert scores["claim_id"].tolist() == split.test["claim_id"].tolist()
    assert scores["probability_collected"].between(0, 1).all()


def test_collectibility_model_save_load_scores_identically_and_hash_is_stable(fitted, tmp_path):
    split, models = fitted
    models.model.save(tmp_path / "a")
    models.model.save(tmp_path / "b")
    assert artifact_sha256(tmp_path / "a") == artifact_sha256(tmp_path / "b")
    loaded = CollectibilityModel.load(tmp_path / "a")
    pd.testing.assert_frame_equal(loaded.score(split.test), models.model.score(split.test))
    assert loaded.metadata["calibration_method"] == models.report["calibration"]["chosen"]
    (tmp_path / "b" / "calibrator.json").write_text("{}\n")
    assert artifact_sha256(tmp_path / "a") != artifact_sha256(tmp_path / "b")


def test_collectibility_model_load_other_feature_set_version_refused(fitted, tmp_path):
    _, models = fitted
    models.model.save(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    metadata["feature_set_version"] = "0-old"
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ArscoreError, match="feature set '0-old'.*retrain"):
        CollectibilityModel.load(tmp_path)


def test_fit_models_classifier_trimmed_to_best_iteration(fitted):
    _, models = fitted
    assert models.model.booster.num_trees() == models.report["classifier_iterations"]
    assert models.report["classifier_iterations"] <= 20


def test_rule_of_thumb_older_and_larger_balance_scores_lower(fitted):
    split, models = fitted
    rule = models.baselines["rule_of_thumb"]
    rows = split.test.iloc[:2].copy()
    rows["days_since_service"] = [20.0, 300.0]
    rows["open_balance"] = [50.0, 5_000.0]
    young_small, old_large = rule.raw_score(rows)
    assert young_small > old_large
    assert rule.probability(rows)[0] >= rule.probability(rows)[1]


def test_rule_of_thumb_probability_is_validation_rate_of_score_bin():
    train = pd.DataFrame({"days_since_service": np.arange(100.0), "open_balance": np.arange(100.0)})
    validation = train.assign(collected=pd.array(train["open_balance"] < 50, dtype="boolean"))
    rule = RuleOfThumb(n_bins=2, prior_rows=0.0).fit(train, validation)
    probabilities = rule.probability(validation)
    assert probabilities[0] == pytest.approx(1.0)
    assert probabilities[-1] == pytest.approx(0.0)


def test_fit_models_baselines_score_every_test_row(fitted):
    split, models = fitted
    scores = models.scores(split.test)
    assert set(scores) == {"lightgbm", "rule_of_thumb", "logistic_regression"}
    for probability, expected in scores.values():
        assert probability.shape == expected.shape == (len(split.test),)
        assert np.isfinite(probability).all() and (probability >= 0).all()


def test_load_config_yaml_then_overrides_later_wins(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("horizon_days: 60\nlightgbm:\n  num_leaves: 15\ntrain_end: 2025-06-30\n")
    config = load_config(path, parse_overrides(["lightgbm.num_leaves=7", "calibration=sigmoid"]))
    assert config.horizon_days == 60
    assert config.lightgbm.num_leaves == 7
    assert config.calibration == "sigmoid"
    assert config.to_dict()["train_end"] == "2025-06-30"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lightgbm.num_leavs=7", "unknown key 'lightgbm.num_leavs'"),
        ("horizon_days=ninety", "horizon_days expects int"),
        ("calibration=platt", "calibration must be one of"),
        ("collected_threshold=1.5", r"collected_threshold must be in \(0, 1\]"),
    ],
)
def test_load_config_bad_override_raises_naming_the_key(override, message):
    with pytest.raises(ArscoreError, match=message):
        load_config(overrides=parse_overrides([override]))

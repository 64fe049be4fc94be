"""Evaluation of collectibility scores: calibration, capacity, slices, plots, model card."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.snapshots import AGING_BUCKETS
from training.evaluation import (
    SLICE_COLUMNS,
    Evaluation,
    ScoreSet,
    age_band,
    capacity_curve,
    evaluate,
    expected_calibration_error,
    zip3_group,
)
from training.model_card import format_metric, write_model_card
from training.plots import write_plots


def labelled_frame(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A test window of n labelled snapshots and the true collection probability of each."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0.02, 0.98, n)
    collected = rng.uniform(size=n) < latent
    balance = rng.lognormal(6.0, 1.0, n).round(2)
    paid_share = np.where(collected, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.3, n))
    recovered = (balance * paid_share).round(2)
    ages = rng.integers(0, 95, n).astype("float64")
    ages[rng.uniform(size=n) < 0.05] = np.nan
    zip3 = rng.choice([f"{z:03d}" for z in range(100, 140)], n).astype(object)
    zip3[rng.uniform(size=n) < 0.05] = None
    frame = pd.DataFrame(
        {
            "collected": pd.array(collected, dtype="boolean"),
            "recovered_amount": recovered,
            "recovered_fraction": np.clip(recovered / balance, 0, 1),
            "collectible_balance": balance,
            "payer_type": rng.choice(["commercial", "medicare", "medicaid", "self_pay"], n),
            "responsibility": rng.choice(["payer", "patient"], n),
            "aging_bucket": rng.choice(AGING_BUCKETS, n),
            "patient_age": pd.array(ages, dtype="Int64"),
            "patient_zip3": pd.array(zip3, dtype="string"),
        }
    )
    return frame, latent


def good_and_noisy_scores(frame: pd.DataFrame, latent: np.ndarray) -> dict[str, ScoreSet]:
    rng = np.random.default_rng(1)
    noisy = np.clip(latent + rng.normal(0, 0.4, latent.size), 0.001, 0.999)
    balance = frame["collectible_balance"].to_numpy()
    return {
        "lightgbm": ScoreSet(latent, latent * balance),
        "noisy": ScoreSet(noisy, noisy * balance),
    }


def tiny_frame() -> pd.DataFrame:
    """Four labelled balances, two per payer type, every payer type with both outcomes."""
    return pd.DataFrame(
        {
            "collected": pd.array([False, True, False, True], dtype="boolean"),
            "recovered_amount": [0.0, 100.0, 0.0, 300.0],
            "payer_type": ["commercial", "commercial", "self_pay", "self_pay"],
            "responsibility": ["payer", "payer", "patient", "patient"],
            "aging_bucket": ["0-30", "0-30", "31-60", "31-60"],
            "patient_age": pd.array([10, 40, None, 70], dtype="Int64"),
            "patient_zip3": pd.array(["750", "750", None, "100"], dtype="string"),
        }
    )


def tiny_scores() -> dict[str, ScoreSet]:
    probability = np.array([0.2, 0.4, 0.6, 0.8])
    return {"lightgbm": ScoreSet(probability, probability * 100)}


def test_expected_calibration_error_calibrated_draws_small():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.02


def test_expected_calibration_error_overconfident_scores_large():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    overconfident = np.where(p > 0.5, 0.99, 0.01)
    assert expected_calibration_error(y, overconfident) > 0.2


def test_expected_calibration_error_tiny_example_matches_hand_value():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.3, 0.4, 0.7, 0.9])
    # bin [0, 0.5): mean score 0.8/3, rate 1/3, weight 3/5; bin [0.5, 1]: 0.8 vs 1.0, weight 2/5
    expected = 3 / 5 * abs(0.8 / 3 - 1 / 3) + 2 / 5 * abs(0.8 - 1.0)
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(expected)
    assert expected == pytest.approx(0.12)


def test_expected_calibration_error_edge_inputs_no_error():
    assert expected_calibration_error(np.array([1.0]), np.array([1.0])) == 0.0
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))


def test_capacity_curve_nonnegative_amounts_monotone_and_full_at_100():
    rng = np.random.default_rng(0)
    recovered = rng.exponential(100, 500)
    curve = capacity_curve(recovered, rng.uniform(size=500))
    assert list(curve["k_percent"]) == list(range(1, 101))
    assert (np.diff(curve["dollars_recovered"]) >= 0).all()
    assert curve["share_of_recovered_dollars"].iloc[-1] == pytest.approx(1.0)
    assert curve["dollars_recovered"].iloc[-1] == pytest.approx(recovered.sum())


def test_capacity_curve_perfect_ranking_beats_random_at_top20():
    rng = np.random.default_rng(0)
    recovered = rng.exponential(100, 1000) * (rng.uniform(size=1000) < 0.15)
    perfect = capacity_curve(recovered, recovered).set_index("k_percent")
    random = capacity_curve(recovered, rng.uniform(size=1000)).set_index("k_percent")
    assert perfect.at[20, "share_of_recovered_dollars"] == pytest.approx(1.0)
    assert random.at[20, "share_of_recovered_dollars"] < 0.4
    assert (
        perfect.at[20, "share_of_recovered_dollars"] > random.at[20, "share_of_recovered_dollars"]
    )


def test_capacity_curve_tied_ranking_gives_random_order_share():
    recovered = np.array([0.0, 0.0, 0.0, 0.0, 1000.0])  # input order must not leak through ties
    curve = capacity_curve(recovered, np.ones(5))
    assert np.allclose(curve["share_of_recovered_dollars"], curve["k_percent"] / 100)


def test_capacity_curve_missing_amounts_left_out_missing_ranking_worked_last():
    curve = capacity_curve(np.array([50.0, np.nan, 150.0]), np.array([np.nan, 9.0, 1.0]))
    curve = curve.set_index("k_percent")
    assert curve.at[50, "dollars_recovered"] == pytest.approx(150.0)
    assert curve.at[100, "dollars_recovered"] == pytest.approx(200.0)


def test_evaluate_better_model_ranks_above_noisy_on_auc():
    frame, latent = labelled_frame()
    evaluation = evaluate(frame, good_and_noisy_scores(frame, latent))
    good, noisy = evaluation.metrics["lightgbm"], evaluation.metrics["noisy"]
    assert good["roc_auc"] > noisy["roc_auc"] + 0.05
    assert good["brier"] < noisy["brier"]
    assert good["dollars_share_top20"] > noisy["dollars_share_top20"]
    assert set(good) >= {"pr_auc", "log_loss", "ece", "lift_top10", "n", "positive_rate"}


def test_evaluate_lift_is_dollar_share_over_k():
    frame, latent = labelled_frame()
    metrics = evaluate(frame, good_and_noisy_scores(frame, latent)).metrics["lightgbm"]
    assert metrics["lift_top10"] == pytest.approx(metrics["dollars_share_top10"] / 0.10)
    assert metrics["lift_top20"] == pytest.approx(metrics["dollars_share_top20"] / 0.20)
    assert metrics["lift_top10"] > 1.0


def test_evaluate_censored_rows_left_out_of_n():
    frame, latent = labelled_frame(n=200)
    frame.loc[:49, "collected"] = pd.NA
    frame.loc[:49, "recovered_amount"] = np.nan
    evaluation = evaluate(frame, good_and_noisy_scores(frame, latent))
    assert evaluation.metrics["lightgbm"]["n"] == 150
    assert np.isfinite(evaluation.metrics["lightgbm"]["roc_auc"])


def test_evaluate_scores_of_wrong_length_raise_value_error():
    frame, _ = labelled_frame(n=10)
    with pytest.raises(ValueError, match="noisy"):
        evaluate(frame, {"noisy": ScoreSet(np.zeros(9), np.zeros(9))})


def test_evaluate_slices_have_documented_columns_and_slice_columns():
    frame, latent = labelled_frame()
    slices = evaluate(frame, good_and_noisy_scores(frame, latent)).slices
    assert list(slices.columns[:8]) == [
        "model",
        "slice_column",
        "slice_value",
        "n",
        "n_positive",
        "positive_rate",
        "mean_score",
        "score_ratio_to_overall",
    ]
    assert {"roc_auc", "calibration_gap"} <= set(slices.columns)
    expected = {"payer_type", "responsibility", "aging_bucket", "age_band", "zip3"}
    assert set(slices["slice_column"]) == expected
    per_column = slices[slices["model"] == "lightgbm"].groupby("slice_column")["n"].sum()
    assert (per_column == len(frame)).all()


def test_age_band_boundaries_map_to_documented_bands():
    ages = pd.Series(pd.array([0, 17, 18, 34, 35, 49, 50, 64, 65, 101, None, -3], dtype="Int64"))
    assert list(age_band(ages)) == [
        "0-17",
        "0-17",
        "18-34",
        "18-34",
        "35-49",
        "35-49",
        "50-64",
        "50-64",
        "65+",
        "65+",
        "unknown",
        "unknown",
    ]


def test_zip3_group_keeps_top_twenty_then_other_and_unknown():
    zip3 = [f"{z:03d}" for z in range(100, 125) for _ in range(125 - z)] + [None]
    grouped = zip3_group(pd.Series(pd.array(zip3, dtype="string")))
    kept = set(grouped) - {"other", "unknown"}
    assert kept == {f"{z:03d}" for z in range(100, 120)}
    assert (grouped == "other").sum() == 5 + 4 + 3 + 2 + 1
    assert grouped.iloc[-1] == "unknown"


def test_evaluate_slice_score_ratio_matches_hand_value():
    slices = evaluate(tiny_frame(), tiny_scores()).slices.set_index(["slice_column", "slice_value"])
    # overall mean score 0.5; commercial 0.3 -> 0.6, self_pay 0.7 -> 1.4
    assert slices.at[("payer_type", "commercial"), "score_ratio_to_overall"] == pytest.approx(0.6)
    assert slices.at[("payer_type", "self_pay"), "score_ratio_to_overall"] == pytest.approx(1.4)
    assert slices.at[("payer_type", "self_pay"), "roc_auc"] == pytest.approx(1.0)
    assert slices.at[("age_band", "unknown"), "n"] == 1
    assert slices.at[("zip3", "750"), "n"] == 2


def test_evaluate_single_class_and_empty_slices_give_nan_not_error():
    slices = evaluate(tiny_frame(), tiny_scores()).slices.set_index(["slice_column", "slice_value"])
    assert slices.at[("age_band", "65+"), "n"] == 1
    assert np.isnan(slices.at[("age_band", "65+"), "roc_auc"])
    assert slices.at[("aging_bucket", "120+"), "n"] == 0  # listed even when empty
    assert np.isnan(slices.at[("aging_bucket", "120+"), "mean_score"])


def test_evaluate_single_class_window_gives_nan_auc():
    frame = tiny_frame().assign(collected=pd.array([True] * 4, dtype="boolean"))
    metrics = evaluate(frame, tiny_scores()).metrics["lightgbm"]
    assert np.isnan(metrics["roc_auc"])
    assert metrics["positive_rate"] == 1.0
    assert np.isfinite(metrics["brier"])


def test_evaluate_empty_window_gives_nan_metrics_not_error():
    empty = tiny_frame().iloc[:0]
    evaluation = evaluate(empty, {"lightgbm": ScoreSet(np.array([]), np.array([]))})
    metrics = evaluation.metrics["lightgbm"]
    assert metrics["n"] == 0
    assert np.isnan(metrics["roc_auc"]) and np.isnan(metrics["dollars_share_top10"])
    assert (evaluation.slices["n"] == 0).all()
    assert len(evaluation.capacity) == 100


def test_evaluation_to_flat_metrics_prefixes_model_and_metric():
    evaluation = Evaluation(
        metrics={"lightgbm": {"roc_auc": 0.8}, "prior": {"roc_auc": 0.5}},
        slices=pd.DataFrame(columns=list(SLICE_COLUMNS)),
        capacity=pd.DataFrame(),
    )
    assert evaluation.to_flat_metrics() == {"test_lightgbm_roc_auc": 0.8, "test_prior_roc_auc": 0.5}
    assert evaluation.to_flat_metrics("valid") == {
        "valid_lightgbm_roc_auc": 0.8,
        "valid_prior_roc_auc": 0.5,
    }


def test_write_plots_writes_four_nonempty_pngs(tmp_path):
    frame, latent = labelled_frame(n=500)
    scores = good_and_noisy_scores(frame, latent)
    contributions = pd.Series({f"feature_{i}": 1.0 / (i + 1) for i in range(30)})
    paths = write_plots(evaluate(frame, scores), frame, scores, contributions, tmp_path / "plots")
    assert sorted(p.name for p in paths) == [
        "calibration.png",
        "capacity.png",
        "feature_contributions.png",
        "score_distribution.png",
    ]
    for path in paths:
        content = path.read_bytes()
        assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 5_000


def card_context() -> dict:
    return {
        "model_name": "arscore-collectibility",
        "model_version": "7",
        "data_window": "2023-01-31 to 2025-06-30",
        "label": "collected: at least 50% of the collectible balance paid within 90 days",
        "split": "train to 2024-09, validation 2024-10..2024-12, test 2025-01..2025-03",
        "recovery_model": "expected recovery = P(collected) x mean recovered fraction x balance",
        "features": ["days_since_service", "payer_type", "open_balance"],
        "reviewer_note": "<script>alert('x')</script>",
    }


@pytest.fixture(scope="module")
def written_card(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("card")
    frame, latent = labelled_frame(n=500)
    scores = good_and_noisy_scores(frame, latent)
    evaluation = evaluate(frame, scores)
    plots = write_plots(evaluation, frame, scores, pd.Series({"open_balance": 0.4}), out_dir)
    md_path, html_path = write_model_card(evaluation, card_context(), plots, out_dir)
    return evaluation, md_path.read_text(), html_path.read_text()


def test_write_model_card_contains_metric_values_best_in_bold(written_card):
    evaluation, markdown, page = written_card
    good, noisy = evaluation.metrics["lightgbm"], evaluation.metrics["noisy"]
    best_auc = format_metric("roc_auc", good["roc_auc"])
    other_auc = format_metric("roc_auc", noisy["roc_auc"])
    assert f"| ROC AUC | **{best_auc}** | {other_auc} |" in markdown
    assert f"<td><strong>{best_auc}</strong></td><td>{other_auc}</td>" in page
    assert format_metric("dollars_share_top20", good["dollars_share_top20"]) in markdown
    assert "Model card: arscore-collectibility (version 7)" in markdown


def test_write_model_card_script_in_context_escaped(written_card):
    _, markdown, page = written_card
    assert "<script>" not in markdown and "<script>" not in page
    assert "reviewer_note: &lt;script&gt;" in markdown
    assert "reviewer_note: &lt;script&gt;" in page


def test_write_model_card_sections_from_context_and_embedded_plots(written_card):
    _, markdown, page = written_card
    for text in ("2023-01-31 to 2025-06-30", "mean recovered fraction", "days_since_service"):
        assert text in markdown and text in page
    assert "## Details" in markdown
    assert "not a credit decision" in markdown
    assert "](calibration.png)" in markdown
    assert page.count('src="data:image/png;base64,') == 4

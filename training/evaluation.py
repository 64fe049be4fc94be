"""Evaluation of collectibility scores on a test window: metrics, fairness slices, capacity.

Only labelled rows count: snapshots whose horizon runs past the data (``collected`` missing) are
left out. Capacity and lift are measured on recovered dollars: collectors work the balances with
the highest expected recovery first, and the question is how many of the dollars that came in
they would have touched. The plots and the model card drawn from an evaluation live in
``training.plots`` and ``training.model_card``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from features.snapshots import AGING_BUCKETS

logger = logging.getLogger(__name__)

TOP_K_PERCENTS = (10, 20)
LOG_LOSS_EPSILON = 1e-15
AGE_BAND_EDGES = (18, 35, 50, 65)
AGE_BANDS = ("0-17", "18-34", "35-49", "50-64", "65+")
ZIP3_TOP_N = 20
UNKNOWN = "unknown"
OTHER = "other"
CAPACITY_COLUMNS = ("model", "k_percent", "dollars_recovered", "share_of_recovered_dollars")
RELIABILITY_COLUMNS = ("model", "bin", "bin_lower", "bin_upper", "n", "mean_score", "observed_rate")
FIXED_SLICE_VALUES = {"aging_bucket": AGING_BUCKETS, "age_band": (*AGE_BANDS, UNKNOWN)}
SLICE_COLUMNS = (
    "model",
    "slice_column",
    "slice_value",
    "n",
    "n_positive",
    "positive_rate",
    "mean_score",
    "score_ratio_to_overall",
    "calibration_gap",
    "roc_auc",
)


@dataclass(frozen=True)
class ScoreSet:
    """One model's scores for the test rows, in the test frame's row order."""

    probability: np.ndarray  # P(collected within horizon), calibrated
    expected_recovery: np.ndarray  # dollars

    def __post_init__(self) -> None:
        probability = np.asarray(self.probability, dtype="float64").ravel()
        expected_recovery = np.asarray(self.expected_recovery, dtype="float64").ravel()
        if probability.shape != expected_recovery.shape:
            raise ValueError(
                f"ScoreSet: probability has {probability.size} values but expected_recovery has "
                f"{expected_recovery.size}; both need one value per test row."
            )
        object.__setattr__(self, "probability", probability)
        object.__setattr__(self, "expected_recovery", expected_recovery)


@dataclass
class Evaluation:
    """Metrics, slices, capacity and reliability tables of every model on one test window."""

    metrics: dict[str, dict[str, float]]  # model name -> metric -> value
    slices: pd.DataFrame  # tidy, one row per model, slice column and slice value
    capacity: pd.DataFrame  # model, k_percent (1..100), dollars_recovered, share_...
    reliability: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=RELIABILITY_COLUMNS)
    )

    def to_flat_metrics(self, prefix: str = "test") -> dict[str, float]:
        """Metrics as one flat mapping for a tracker, e.g. ``test_lightgbm_roc_auc``."""
        head = f"{prefix}_" if prefix else ""
        return {
            f"{head}{model}_{metric}": float(value)
            for model, values in self.metrics.items()
            for metric, value in values.items()
        }


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Count, mean score and observed rate per equal-width score bin (p = 1 falls in the last)."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    bins = np.clip(np.floor(p * n_bins).astype("int64"), 0, n_bins - 1)
    n = np.bincount(bins, minlength=n_bins).astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(bins, weights=p, minlength=n_bins) / n
        observed_rate = np.bincount(bins, weights=y, minlength=n_bins) / n
    edges = np.arange(n_bins + 1) / n_bins
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "n": n.astype("int64"),
            "mean_score": mean_score,
            "observed_rate": observed_rate,
        }
    )


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Count-weighted mean gap between mean score and observed rate over equal-width bins."""
    table = reliability_table(y, p, n_bins)
    total = table["n"].sum()
    if total == 0:
        return float("nan")
    gaps = (table["mean_score"] - table["observed_rate"]).abs().fillna(0.0)
    return float((gaps * table["n"]).sum() / total)


def capacity_curve(recovered: np.ndarray, ranking_value: np.ndarray) -> pd.DataFrame:
    """Dollars recovered if collectors work the top k% of balances by ranking value, k = 1..100.

    Tied ranking values are worked in random order (each tied balance counts its group's mean);
    a fractional boundary balance counts pro rata. Rows with no recovered amount are left out;
    balances with no ranking value are worked last.
    """
    recovered = np.asarray(recovered, dtype="float64").ravel()
    ranking = np.asarray(ranking_value, dtype="float64").ravel()
    if recovered.shape != ranking.shape:
        raise ValueError(
            f"capacity_curve: {recovered.size} recovered amounts but {ranking.size} ranking values."
        )
    known = np.isfinite(recovered)
    recovered, ranking = recovered[known], np.nan_to_num(ranking[known], nan=-np.inf)
    order = np.argsort(-ranking, kind="stable")
    _, tie_group, tie_size = np.unique(ranking[order], return_inverse=True, return_counts=True)
    tie_mean = np.bincount(tie_group, weights=recovered[order]) / tie_size
    cumulative = np.concatenate([[0.0], np.cumsum(tie_mean[tie_group])])
    k_percent = np.arange(1, 101)
    dollars = np.interp(k_percent / 100 * recovered.size, np.arange(recovered.size + 1), cumulative)
    total = cumulative[-1]
    share = dollars / total if total != 0 else np.full(k_percent.shape, np.nan)
    return pd.DataFrame(
        {"k_percent": k_percent, "dollars_recovered": dollars, "share_of_recovered_dollars": share}
    )


def _both_classes(y: np.ndarray) -> bool:
    return y.size > 0 and y.min() != y.max()


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if _both_classes(y) else float("nan")


def classification_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    """Discrimination and calibration of probabilities p against 0/1 outcomes y."""
    if y.size == 0:
        names = ("positive_rate", "roc_auc", "pr_auc", "brier", "log_loss", "ece")
        return {"n": 0.0, **dict.fromkeys(names, float("nan"))}
    clipped = np.clip(p, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    log_loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    return {
        "n": float(y.size),
        "positive_rate": float(y.mean()),
        "roc_auc": _roc_auc(y, p),
        "pr_auc": float(average_precision_score(y, p)) if y.max() > 0 else float("nan"),
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(log_loss),
        "ece": expected_calibration_error(y, p, n_bins),
    }


def dollar_metrics(recovered: np.ndarray, expected_recovery: np.ndarray) -> dict[str, float]:
    """Share of recovered dollars in the top k% by expected recovery, its lift, expected/actual."""
    curve = capacity_curve(recovered, expected_recovery).set_index("k_percent")
    metrics: dict[str, float] = {}
    for k in TOP_K_PERCENTS:
        share = float(curve.at[k, "share_of_recovered_dollars"])
        metrics[f"lift_top{k}"] = share / (k / 100)
        metrics[f"dollars_share_top{k}"] = share
    actual = float(np.nansum(recovered))
    expected = float(np.nansum(expected_recovery))
    metrics["expected_to_recovered_dollars"] = expected / actual if actual != 0 else float("nan")
    return metrics


def age_band(patient_age: pd.Series) -> pd.Series:
    """Age band of each patient age (0-17, 18-34, 35-49, 50-64, 65+), "unknown" when missing."""
    age = pd.to_numeric(patient_age, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    codes = np.searchsorted(np.array(AGE_BAND_EDGES), np.nan_to_num(age, nan=0.0), side="right")
    bands = np.array(AGE_BANDS, dtype=object)[codes]
    return pd.Series(np.where(np.isnan(age) | (age < 0), UNKNOWN, bands), index=patient_age.index)


def zip3_group(patient_zip3: pd.Series, top_n: int = ZIP3_TOP_N) -> pd.Series:
    """The zip3 itself for the top_n most frequent, "other" for the rest, "unknown" when missing."""
    zip3 = patient_zip3.astype("string").str.strip().replace("", pd.NA)
    counts = zip3.value_counts().sort_index()
    top = counts.sort_values(ascending=False, kind="stable").index[:top_n]
    grouped = zip3.where(zip3.isin(top), OTHER).where(zip3.notna(), UNKNOWN)
    return grouped.astype(object)


def slice_values(test: pd.DataFrame) -> dict[str, pd.Series]:
    """Each row's value for every slice whose source column is present in the frame."""
    slices = {
        column: test[column].astype("string").fillna(UNKNOWN).astype(object)
        for column in ("payer_type", "responsibility", "aging_bucket")
        if column in test
    }
    if "patient_age" in test:
        slices["age_band"] = age_band(test["patient_age"])
    if "patient_zip3" in test:
        slices["zip3"] = zip3_group(test["patient_zip3"])
    return slices


def _slice_order(slice_column: str, values: pd.Series) -> list[str]:
    """Fixed categories first (listed even when empty), then by frequency; other, unknown last."""
    fixed = FIXED_SLICE_VALUES.get(slice_column, ())
    counts = values.value_counts()
    observed = sorted(counts.index, key=lambda value: (-counts[value], str(value)))
    middle = [v for v in observed if v not in fixed and v not in (OTHER, UNKNOWN)]
    tail = [v for v in (OTHER, UNKNOWN) if v in counts.index and v not in fixed]
    return [*fixed, *middle, *tail]


def slice_row(y: np.ndarray, p: np.ndarray, overall_mean_score: float) -> dict[str, float]:
    """Size, outcome rate, mean score and its ratio to the overall mean, and AUC of one slice."""
    if y.size == 0:
        names = (
            "positive_rate",
            "mean_score",
            "score_ratio_to_overall",
            "calibration_gap",
            "roc_auc",
        )
        return {"n": 0, "n_positive": 0, **dict.fromkeys(names, float("nan"))}
    mean_score = float(p.mean())
    ratio = mean_score / overall_mean_score if overall_mean_score > 0 else float("nan")
    return {
        "n": int(y.size),
        "n_positive": int(y.sum()),
        "positive_rate": float(y.mean()),
        "mean_score": mean_score,
        "score_ratio_to_overall": ratio,
        "calibration_gap": mean_score - float(y.mean()),
        "roc_auc": _roc_auc(y, p),
    }


def slice_table(
    model: str, y: np.ndarray, p: np.ndarray, slices: dict[str, pd.Series]
) -> pd.DataFrame:
    """One model's slice rows for every slice column (y, p and slices aligned row by row)."""
    overall = float(p.mean()) if p.size else float("nan")
    rows = []
    for slice_column, values in slices.items():
        labels = values.to_numpy(dtype=object)
        for slice_value in _slice_order(slice_column, values):
            member = labels == slice_value
            stats = slice_row(y[member], p[member], overall)
            rows.append(
                {"model": model, "slice_column": slice_column, "slice_value": slice_value, **stats}
            )
    return pd.DataFrame(rows, columns=list(SLICE_COLUMNS))


def _labelled_rows(test: pd.DataFrame) -> np.ndarray:
    """Rows with a known outcome and a known recovered amount (censored snapshots have neither)."""
    missing = [c for c in ("collected", "recovered_amount") if c not in test]
    if missing:
        raise ValueError(f"evaluate: the test frame has no {', '.join(missing)} column.")
    collected = test["collected"].to_numpy(dtype="float64", na_value=np.nan)
    recovered = pd.to_numeric(test["recovered_amount"]).to_numpy(dtype="float64", na_value=np.nan)
    labelled = np.isfinite(collected) & np.isfinite(recovered)
    if not labelled.all():
        logger.warning(
            "evaluate: %d of %d test rows have no label; left out", (~labelled).sum(), labelled.size
        )
    return labelled


def _concat(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)[list(columns)]


def evaluate(test: pd.DataFrame, scores: dict[str, ScoreSet], n_bins: int = 10) -> Evaluation:
    """Metrics, slices, capacity curve and reliability bins of each model on the test window."""
    for name, score in scores.items():
        if score.probability.size != len(test):
            raise ValueError(
                f"evaluate: model {name!r} has {score.probability.size} scores "
                f"for {len(test)} test rows; scores must follow the test frame's rows."
            )
    labelled = _labelled_rows(test)
    y_all = test["collected"].to_numpy(dtype="float64", na_value=np.nan)[labelled]
    recovered = pd.to_numeric(test["recovered_amount"]).to_numpy(dtype="float64")[labelled]
    slices = slice_values(test.loc[labelled])
    metrics, slice_frames, capacity, reliability = {}, [], [], []
    for name, score in scores.items():
        p_all = score.probability[labelled]
        scored = np.isfinite(p_all)
        if not scored.all():
            logger.warning(
                "evaluate: model %r has %d rows with no probability", name, (~scored).sum()
            )
        y, p = y_all[scored], p_all[scored]
        expected = score.expected_recovery[labelled]
        metrics[name] = {
            **classification_metrics(y, p, n_bins),
            **dollar_metrics(recovered, expected),
        }
        scored_slices = {column: values[scored] for column, values in slices.items()}
        slice_frames.append(slice_table(name, y, p, scored_slices))
        capacity.append(capacity_curve(recovered, expected).assign(model=name))
        reliability.append(reliability_table(y, p, n_bins).assign(model=name))
    return Evaluation(
        metrics=metrics,
        slices=_concat(slice_frames, SLICE_COLUMNS),
        capacity=_concat(capacity, CAPACITY_COLUMNS),
        reliability=_concat(reliability, RELIABILITY_COLUMNS),
    )

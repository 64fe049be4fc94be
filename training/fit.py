"""Fitting: the feature pipeline, the LightGBM classifier and recovery model, the calibrator,
and two baselines on the same split.

* ``lightgbm``: binary classifier of ``collected`` with early stopping on validation, its
  probability calibrated on validation (isotonic or sigmoid, chosen by cross-fitted log loss
  when ``calibration: auto``), and a second booster with the cross-entropy objective on
  ``recovered_fraction`` for expected dollars.
* ``rule_of_thumb``: what collectors do today, "older and larger is less collectible": a
  deterministic score from the age since service and the open balance, turned into a fair
  probability by the observed validation collection rate of its score bin.
* ``logistic_regression``: the same feature matrix, imputed, one-hot encoded and standardized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from features.errors import ArscoreError
from features.model import Calibrator, CollectibilityModel
from features.pipeline import FeaturePipeline
from training.config import LightGBMParams, TrainingConfig
from training.split import Split

PRIMARY_MODEL = "lightgbm"
RULE_OF_THUMB = "rule_of_thumb"
LOGISTIC_REGRESSION = "logistic_regression"
LOG_LOSS_EPSILON = 1e-15


def outcomes(frame: pd.DataFrame) -> np.ndarray:
    """The 0/1 ``collected`` label of labelled rows as float64."""
    return frame["collected"].to_numpy(dtype=np.float64, na_value=np.nan)


def recovered_fraction(frame: pd.DataFrame) -> np.ndarray:
    """The share of the collectible balance recovered within the horizon, in [0, 1]."""
    return frame["recovered_fraction"].to_numpy(dtype=np.float64, na_value=np.nan)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary log loss."""
    p = np.clip(p, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of probabilities."""
    return float(np.mean((p - y) ** 2))


def fit_booster(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    pipeline: FeaturePipeline,
    params: LightGBMParams,
    objective: str,
    seed: int,
) -> tuple[lightgbm.Booster, int]:
    """A booster early-stopped on validation, trimmed to its best iteration."""
    names = list(pipeline.feature_names_)
    categorical = list(pipeline.categorical_indices_)
    train_set = lightgbm.Dataset(
        X_train, label=y_train, feature_name=names, categorical_feature=categorical
    )
    valid_set = lightgbm.Dataset(X_valid, label=y_valid, reference=train_set)
    booster = lightgbm.train(
        params.booster_params(objective, seed),
        train_set,
        num_boost_round=params.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lightgbm.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best)), best


def _cross_fitted(method: str, raw: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold calibrated probabilities on the validation rows."""
    fold = np.random.default_rng(seed).permutation(raw.size) % folds
    calibrated = np.empty_like(raw)
    for k in range(folds):
        held_out = fold == k
        calibrator = Calibrator(method).fit(raw[~held_out], y[~held_out])  # type: ignore[arg-type]
        calibrated[held_out] = calibrator.transform(raw[held_out])
    return calibrated


def choose_calibrator(
    raw_valid: np.ndarray, y_valid: np.ndarray, method: str, folds: int, seed: int
) -> tuple[Calibrator, dict[str, Any]]:
    """The calibrator fitted on all validation rows; ``auto`` picks by cross-fitted log loss."""
    report: dict[str, Any] = {
        "uncalibrated": {
            "log_loss": log_loss(y_valid, raw_valid),
            "brier": brier(y_valid, raw_valid),
        }
    }
    candidates = ("isotonic", "sigmoid") if method == "auto" else (method,)
    for candidate in candidates:
        out_of_fold = _cross_fitted(candidate, raw_valid, y_valid, folds, seed)
        report[candidate] = {
            "log_loss": log_loss(y_valid, out_of_fold),
            "brier": brier(y_valid, out_of_fold),
        }
    chosen = min(candidates, key=lambda c: (report[c]["log_loss"], report[c]["brier"]))
    report["chosen"] = chosen
    return Calibrator(chosen).fit(raw_valid, y_valid), report  # type: ignore[arg-type]


class RuleOfThumb:
    """Older and larger is less collectible: a score from age and balance ranks, binned and
    mapped to the validation collection rate of its bin (smoothed toward the overall rate)."""

    def __init__(self, n_bins: int = 20, prior_rows: float = 20.0):
        self.n_bins = n_bins
        self.prior_rows = prior_rows

    def _rank(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        values = pd.to_numeric(frame[column]).to_numpy(dtype=np.float64, na_value=np.nan)
        grid = np.linspace(0.0, 1.0, self.quantiles_[column].size)
        return np.interp(np.nan_to_num(values, nan=0.0), self.quantiles_[column], grid)

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """In [0, 1]: 1 for the youngest, smallest balance; 0 for the oldest, largest."""
        ranks = self._rank(frame, "days_since_service") + self._rank(frame, "open_balance")
        return 1.0 - ranks / 2.0

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame) -> RuleOfThumb:
        """Rank scales from train, bin edges from train scores, bin rates from validation."""
        levels = np.linspace(0.0, 1.0, 101)
        self.quantiles_: dict[str, np.ndarray] = {}
        for column in ("days_since_service", "open_balance"):
            values = pd.to_numeric(train[column]).to_numpy(dtype=np.float64, na_value=0.0)
            self.quantiles_[column] = np.quantile(values, levels)
        edges = np.quantile(self.raw_score(train), np.linspace(0, 1, self.n_bins + 1))
        self.edges_ = np.unique(edges[1:-1])
        bins = np.searchsorted(self.edges_, self.raw_score(validation), side="right")
        y = outcomes(validation)
        overall = float(y.mean())
        n = np.bincount(bins, minlength=self.edges_.size + 1)
        positives = np.bincount(bins, weights=y, minlength=self.edges_.size + 1)
        self.rates_ = (positives + self.prior_rows * overall) / (n + self.prior_rows)
        return self

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        """The validation collection rate of each row's score bin."""
        return self.rates_[np.searchsorted(self.edges_, self.raw_score(frame), side="right")]

    def expected_recovery(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated score x collectible balance."""
        return self.probability(frame) * _balance(frame)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class LogisticBaseline:
    """Logistic regression on the pipeline's matrix: numeric columns imputed (with missing
    indicators), signed-log and standardized; categorical codes one-hot encoded."""

    pipeline: FeaturePipeline
    seed: int = 0
    max_rows: int = 300_000

    def fit(self, train: pd.DataFrame, validation: pd.DataFrame) -> LogisticBaseline:
        """Fit on train (subsampled above ``max_rows``); validation is not used."""
        X, y = self.pipeline.transform(train), outcomes(train)
        if len(y) > self.max_rows:
            keep = np.random.default_rng(self.seed).choice(len(y), self.max_rows, replace=False)
            X, y = X[keep], y[keep]
        categorical = list(self.pipeline.categorical_indices_)
        numeric = [i for i in range(X.shape[1]) if i not in categorical]
        encode = ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(
                        SimpleImputer(
                            strategy="median", add_indicator=True, keep_empty_features=True
                        ),
                        FunctionTransformer(_signed_log),
                        StandardScaler(),
                    ),
                    numeric,
                ),
                (
                    "categorical",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value=-1.0),
                        OneHotEncoder(handle_unknown="ignore"),
                    ),
                    categorical,
                ),
            ]
        )
        self.estimator_ = Pipeline(
            [("encode", encode), ("model", LogisticRegression(C=1.0, max_iter=2000))]
        ).fit(X, y.astype(np.int64))
        return self

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        """P(collected) from the logistic model."""
        return self.estimator_.predict_proba(self.pipeline.transform(frame))[:, 1]

    def expected_recovery(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability x collectible balance."""
        return self.probability(frame) * _balance(frame)


def _balance(frame: pd.DataFrame) -> np.ndarray:
    return np.clip(frame["collectible_balance"].to_numpy(dtype=np.float64, na_value=0.0), 0, None)


@dataclass
class FittedModels:
    """The model to log, the baselines, and what fitting chose (iterations, calibration)."""

    model: CollectibilityModel
    baselines: dict[str, RuleOfThumb | LogisticBaseline]
    report: dict[str, Any]

    def scores(self, frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(probability, expected recovery) of every model on the rows of ``frame``."""
        X = self.model.features(frame)
        result = {
            PRIMARY_MODEL: (self.model.probability(X), self.model.expected_recovery(frame, X))
        }
        for name, baseline in self.baselines.items():
            result[name] = (baseline.probability(frame), baseline.expected_recovery(frame))
        return result


BoosterFitter = Callable[..., tuple[lightgbm.Booster, int]]
"""Same signature and result as ``fit_booster`` (``training.dask_fit`` passes a Dask one)."""


def fit_collectibility_model(
    split: Split,
    config: TrainingConfig,
    metadata: dict[str, Any],
    step: Callable[[str], None] | None = None,
    booster_fitter: BoosterFitter | None = None,
) -> CollectibilityModel:
    """The logged model alone: pipeline, calibrated classifier and recovery booster
    (boosters fitted by ``booster_fitter``, default ``fit_booster``)."""
    fit = booster_fitter or fit_booster
    announce = step or (lambda name: None)
    announce("feature pipeline")
    pipeline = FeaturePipeline().fit(split.train)
    X_train, X_valid = pipeline.transform(split.train), pipeline.transform(split.validation)
    y_train, y_valid = outcomes(split.train), outcomes(split.validation)
    if np.unique(y_train).size < 2 or np.unique(y_valid).size < 2:
        raise ArscoreError("train and validation each need collected and uncollected rows")
    announce("classifier")
    booster, best = fit(
        X_train, y_train, X_valid, y_valid, pipeline, config.lightgbm, "binary", config.seed
    )
    announce("calibration")
    calibrator, calibration = choose_calibrator(
        np.asarray(booster.predict(X_valid)),
        y_valid,
        config.calibration,
        config.calibration_folds,
        config.seed,
    )
    announce("recovery model")
    recovery, recovery_best = fit(
        X_train,
        recovered_fraction(split.train),
        X_valid,
        recovered_fraction(split.validation),
        pipeline,
        config.recovery,
        "cross_entropy",
        config.seed,
    )
    report = {
        "classifier_iterations": best,
        "recovery_iterations": recovery_best,
        "calibration": calibration,
        "rows": {name: len(frame) for name, frame in split.frames().items()},
    }
    return CollectibilityModel(
        pipeline=pipeline,
        booster=booster,
        calibrator=calibrator,
        recovery_booster=recovery,
        metadata={**metadata, "calibration_method": calibration["chosen"], "fit": report},
    )


def fit_models(
    split: Split,
    config: TrainingConfig,
    metadata: dict[str, Any],
    step: Callable[[str], None] | None = None,
    booster_fitter: BoosterFitter | None = None,
) -> FittedModels:
    """Fit everything on ``split``; ``step`` is told the name of each step as it starts."""
    model = fit_collectibility_model(split, config, metadata, step, booster_fitter)
    (step or (lambda name: None))("baselines")
    baselines: dict[str, RuleOfThumb | LogisticBaseline] = {
        RULE_OF_THUMB: RuleOfThumb().fit(split.train, split.validation),
        LOGISTIC_REGRESSION: LogisticBaseline(model.pipeline, seed=config.seed).fit(
            split.train, split.validation
        ),
    }
    return FittedModels(model=model, baselines=baselines, report=model.metadata["fit"])

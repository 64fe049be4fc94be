"""The logged model: the fitted feature pipeline, two LightGBM boosters and a calibrator.

Training builds a ``CollectibilityModel`` and saves it as a directory; serving loads that
directory and never imports training. The directory holds plain files so that a reviewer can
read what was shipped and ``artifact_sha256`` can pin it:

    classifier.txt      LightGBM text model: raw margin of P(collected within H)
    recovery.txt        LightGBM text model (cross-entropy): expected recovered fraction
    calibrator.json     the calibration map from the classifier's probability
    metadata.json       feature names, category levels, label definition, window, provenance
    pipeline.pkl        the fitted FeaturePipeline (the very transformer training used)
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm
import numpy as np
import pandas as pd

from features import FEATURE_SET_VERSION
from features.errors import ArscoreError
from features.pipeline import FeaturePipeline
from features.trees.forest import CompiledBooster

MODEL_FORMAT_VERSION = 1
CLASSIFIER_FILE = "classifier.txt"
RECOVERY_FILE = "recovery.txt"
CALIBRATOR_FILE = "calibrator.json"
METADATA_FILE = "metadata.json"
PIPELINE_FILE = "pipeline.pkl"
MODEL_FILES = (CLASSIFIER_FILE, RECOVERY_FILE, CALIBRATOR_FILE, METADATA_FILE, PIPELINE_FILE)
SCORE_COLUMNS = ("claim_id", "probability_collected", "expected_recovery")

CalibrationMethod = Literal["isotonic", "sigmoid"]


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(probability, dtype=np.float64), 1e-9, 1 - 1e-9)
    return np.log(clipped) - np.log1p(-clipped)


def _sigmoid(margin: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * margin))


def _isotonic_blocks(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool adjacent violators: the block centroids (x) and strictly increasing block means."""
    unique_x, inverse = np.unique(x, return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    sums = np.bincount(inverse, weights=y)
    means: list[float] = []
    block_weights: list[float] = []
    block_x: list[float] = []
    for mean, weight, position in zip(sums / weights, weights, unique_x, strict=True):
        mean, weight, weighted_x = float(mean), float(weight), float(position * weight)
        while means and means[-1] >= mean:
            previous_weight = block_weights.pop()
            total = previous_weight + weight
            mean = (means.pop() * previous_weight + mean * weight) / total
            weighted_x += block_x.pop()
            weight = total
        means.append(mean)
        block_weights.append(weight)
        block_x.append(weighted_x)
    centroids = np.asarray(block_x) / np.asarray(block_weights)
    return centroids, np.asarray(means)


def _fit_platt(margin: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Logistic regression of y on the raw margin (Newton steps with a tiny ridge)."""
    design = np.column_stack([margin, np.ones_like(margin)])
    coef = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = _sigmoid(design @ coef)
        gradient = design.T @ (p - y) + 1e-6 * coef
        hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        coef -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(coef[0]), float(coef[1])


class Calibrator:
    """Maps the classifier's probability to a calibrated one; pure numpy, fitted on validation.

    ``isotonic`` pools adjacent violators and interpolates linearly between block centroids, so
    the map is strictly increasing between its ends and keeps the model's ranking (no plateaus
    of tied scores inside the fitted range). ``sigmoid`` is Platt scaling on the log-odds.
    """

    EPSILON = 1e-4

    def __init__(self, method: CalibrationMethod = "isotonic"):
        if method not in ("isotonic", "sigmoid"):
            raise ArscoreError(f"calibration method must be isotonic or sigmoid, got {method!r}")
        self.method = method

    def fit(self, raw_prob: np.ndarray, y: np.ndarray) -> Calibrator:
        """Learn the map from raw probabilities and 0/1 outcomes."""
        raw_prob = np.asarray(raw_prob, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if raw_prob.shape != y.shape or raw_prob.size == 0:
            raise ArscoreError("calibration needs as many outcomes as probabilities, at least one")
        if self.method == "isotonic":
            self.x_, self.y_ = _isotonic_blocks(raw_prob, y)
        else:
            self.slope_, self.intercept_ = _fit_platt(_logit(raw_prob), y)
        return self

    def transform(self, raw_prob: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, kept inside [EPSILON, 1 - EPSILON]."""
        raw_prob = np.asarray(raw_prob, dtype=np.float64)
        if self.method == "isotonic":
            calibrated = np.interp(raw_prob, self.x_, self.y_)
        else:
            calibrated = _sigmoid(self.slope_ * _logit(raw_prob) + self.intercept_)
        return np.clip(calibrated, self.EPSILON, 1 - self.EPSILON)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (floats round-trip exactly through JSON)."""
        if self.method == "isotonic":
            return {"method": "isotonic", "x": self.x_.tolist(), "y": self.y_.tolist()}
        return {"method": "sigmoid", "slope": self.slope_, "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        """The calibrator described by ``to_dict``."""
        calibrator = cls(data["method"])
        if calibrator.method == "isotonic":
            calibrator.x_ = np.asarray(data["x"], dtype=np.float64)
            calibrator.y_ = np.asarray(data["y"], dtype=np.float64)
        else:
            calibrator.slope_ = float(data["slope"])
            calibrator.intercept_ = float(data["intercept"])
        return calibrator


@dataclass
class CollectibilityModel:
    """What serving scores with: features, calibrated P(collected within H), expected dollars.

    ``booster`` is a binary classifier of ``collected``; ``recovery_booster`` is trained with
    the cross-entropy objective on ``recovered_fraction`` in [0, 1], so its prediction is the
    expected fraction of the collectible balance recovered within the horizon.
    """

    pipeline: FeaturePipeline
    booster: lightgbm.Booster
    calibrator: Calibrator
    recovery_booster: lightgbm.Booster
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        derived = {
            "model_format": MODEL_FORMAT_VERSION,
            "feature_names": list(self.pipeline.feature_names_),
            "categorical_features": list(self.pipeline.categorical),
            "categorical_levels": {k: list(v) for k, v in self.pipeline.levels_.items()},
            "feature_set_version": FEATURE_SET_VERSION,
        }
        for key, value in derived.items():
            if key in self.metadata and self.metadata[key] != value:
                raise ArscoreError(
                    f"model metadata {key!r} disagrees with the fitted pipeline/code: "
                    f"{self.metadata[key]!r} != {value!r}"
                )
        self.metadata = {**self.metadata, **derived}
        if self.booster.num_feature() != len(self.pipeline.feature_names_):
            raise ArscoreError("the classifier was trained on a different number of features")

    @property
    def input_columns(self) -> list[str]:
        """Snapshot columns ``score`` needs: the claim, the dollar base and every feature."""
        columns = ["claim_id", "collectible_balance", *self.pipeline.feature_names_]
        return list(dict.fromkeys(columns))

    def features(self, snapshots: pd.DataFrame) -> np.ndarray:
        """The float64 feature matrix of snapshot rows."""
        return self.pipeline.transform(snapshots)

    def compiled_boosters(self) -> tuple[CompiledBooster, CompiledBooster]:
        """The classifier and the recovery booster through features.trees' compiled kernels
        (equal to LightGBM's predict and pred_contrib), built on first use and kept; rebuilt if
        a booster was replaced."""
        cached = self.__dict__.get("_compiled")
        if (
            cached is None
            or cached[0].booster is not self.booster
            or cached[1].booster is not self.recovery_booster
        ):
            cached = (
                CompiledBooster(self.booster, "classifier"),
                CompiledBooster(self.recovery_booster, "recovery booster"),
            )
            self.__dict__["_compiled"] = cached
        return cached

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the built kernels (rebuilt on first use where it is unpickled)."""
        return {k: v for k, v in self.__dict__.items() if k != "_compiled"}

    def probability(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Calibrated probability that the balance is collected within the horizon."""
        return self.calibrator.transform(self.compiled_boosters()[0].predict(X, False, num_threads))

    def raw_score(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """The classifier's raw margin (log-odds before calibration)."""
        return self.compiled_boosters()[0].predict(X, raw_score=True, num_threads=num_threads)

    def recovery_fraction(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """The recovery booster's expected recovered fraction, clipped to [0, 1]."""
        return np.clip(self.compiled_boosters()[1].predict(X, False, num_threads), 0.0, 1.0)

    def expected_recovery(self, snapshots: pd.DataFrame, X: np.ndarray) -> np.ndarray:
        """Expected dollars recovered within the horizon: collectible balance x fraction."""
        if "collectible_balance" not in snapshots.columns:
            raise ArscoreError("snapshot rows lack the column 'collectible_balance'")
        balance = pd.to_numeric(snapshots["collectible_balance"]).to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        return np.clip(balance, 0.0, None) * self.recovery_fraction(X)

    def contributions(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """Exact per-feature contributions to the raw margin (TreeSHAP, equal to LightGBM's
        ``pred_contrib``); last column is the bias."""
        return self.compiled_boosters()[0].contributions(X, num_threads=num_threads)

    def score(self, snapshots: pd.DataFrame) -> pd.DataFrame:
        """One row per snapshot row: claim_id, probability_collected, expected_recovery."""
        X = self.features(snapshots)
        return pd.DataFrame(
            {
                "claim_id": snapshots["claim_id"].astype("string").to_numpy(),
                "probability_collected": self.probability(X),
                "expected_recovery": self.expected_recovery(snapshots, X),
            },
            index=snapshots.index,
        )

    def save(self, directory: Path) -> None:
        """Write the model's files into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CLASSIFIER_FILE).write_text(self.booster.model_to_string(), encoding="utf-8")
        (directory / RECOVERY_FILE).write_text(
            self.recovery_booster.model_to_string(), encoding="utf-8"
        )
        (directory / CALIBRATOR_FILE).write_text(_to_json(self.calibrator.to_dict()), "utf-8")
        (directory / METADATA_FILE).write_text(_to_json(self.metadata), encoding="utf-8")
        (directory / PIPELINE_FILE).write_bytes(pickle.dumps(self.pipeline, protocol=5))

    @classmethod
    def load(cls, directory: Path) -> CollectibilityModel:
        """The model saved in ``directory``; refuses a directory built for another feature set."""
        directory = Path(directory)
        missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
        if missing:
            raise ArscoreError(f"{directory}: not a saved arscore model, missing {missing}")
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        if metadata.get("model_format") != MODEL_FORMAT_VERSION:
            raise ArscoreError(
                f"{directory}: model format {metadata.get('model_format')!r}, "
                f"this code reads format {MODEL_FORMAT_VERSION}"
            )
        if metadata.get("feature_set_version") != FEATURE_SET_VERSION:
            raise ArscoreError(
                f"{directory}: model built for feature set {metadata.get('feature_set_version')!r}"
                f", this code computes feature set {FEATURE_SET_VERSION!r}; retrain the model"
            )
        calibrator = Calibrator.from_dict(
            json.loads((directory / CALIBRATOR_FILE).read_text(encoding="utf-8"))
        )
        # The pipeline file is written by training and pinned by artifact_sha256; load models
        # only from a registry you trust (unpickling runs code).
        pipeline = pickle.loads((directory / PIPELINE_FILE).read_bytes())  # noqa: S301
        model = cls(
            pipeline=pipeline,
            booster=_read_booster(directory / CLASSIFIER_FILE),
            calibrator=calibrator,
            recovery_booster=_read_booster(directory / RECOVERY_FILE),
            metadata=metadata,
        )
        model.compiled_boosters()  # built here, not in the first request after a (re)load
        return model


def _to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def _read_booster(path: Path) -> lightgbm.Booster:
    return lightgbm.Booster(model_str=path.read_text(encoding="utf-8"))


def artifact_sha256(directory: Path) -> str:
    """SHA-256 over a saved model directory: sorted relative paths, each with its bytes."""
    directory = Path(directory)
    digest = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        raise ArscoreError(f"{directory}: no files to hash")
    for path in files:
        relative = path.relative_to(directory).as_posix().encode("utf-8")
        content = path.read_bytes()
        digest.update(len(relative).to_bytes(8, "big") + relative)
        digest.update(len(content).to_bytes(8, "big") + content)
    return digest.hexdigest()

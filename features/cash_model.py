"""The logged cash forecast model: expected cash per open balance and week, and its intervals.

Training (``training.forecast``) builds a ``CashForecastModel`` and saves it as a directory of
plain files; the command line and, later, the server load it without importing training:

    payer_<part>.txt, patient_<part>.txt   LightGBM text models, one set per side of the cash
    intervals.json     split-conformal quantiles of the relative error, per grouping and week
    metadata.json      formulation, feature names, category levels, horizon, provenance
    pipeline.pkl       the fitted FeaturePipeline (the very transformer training used)

``artifact_sha256`` (from ``features.model``) pins the directory in the registry.

The model is discrete-time: one row per open balance and week after the as-of date. Its
formulation says what the boosters estimate (``FORMULATION_PARTS``):

* ``rate``: E[cash in week w / open balance], a Poisson booster weighted by the balance;
* ``hazard``: P(any payment in week w) x E[cash / open balance | a payment in week w]
  (a binary and a gamma booster, both weighted by the balance);
* ``dollars``: E[cash in week w] in dollars, a Poisson booster on the amount itself.

Intervals are multiplicative on the forecast: for a grouping, a group and a week, the interval
at level L is expected x (1 -+ q), q the conformal quantile of |actual - expected| / expected
observed at earlier origins (``Intervals``), the lower end floored at zero.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from features import FEATURE_SET_VERSION
from features.cash_weeks import SIDES, WEEK_FEATURES, account_week_matrix
from features.errors import ArscoreError
from features.pipeline import FeaturePipeline

CASH_MODEL_FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
INTERVALS_FILE = "intervals.json"
PIPELINE_FILE = "pipeline.pkl"
FORMULATION_PARTS: dict[str, tuple[str, ...]] = {
    "rate": ("rate",),
    "hazard": ("payment", "amount"),
    "dollars": ("dollars",),
}
BALANCE_COLUMN = "open_balance"
GROUP_COLUMNS = ("payer_type", "responsibility")
"""What a forecast can be broken down by: the claim's payer type, and who pays the cash
(``payer`` or ``patient``: the side of the cash, not who owes the balance today)."""
TOTAL = "total"
POOLED = "*"
LEVELS = (0.8, 0.95)


def booster_file(side: str, part: str) -> str:
    """File name of one booster of the saved model."""
    return f"{side}_{part}.txt"


def grouping_key(by: tuple[str, ...]) -> str:
    """The key of a grouping in the interval tables: ``total`` or the columns joined by commas."""
    return ",".join(by) if by else TOTAL


def group_key(values: tuple[object, ...]) -> str:
    """The key of one group: its values joined by ``|``."""
    return "|".join(str(value) for value in values)


@dataclass
class Intervals:
    """Conformal quantiles q[grouping][group][level] per week (1..horizon), and where they came
    from. ``score_floor`` (dollars) keeps the relative error finite where little is expected."""

    quantiles: dict[str, dict[str, dict[str, list[float]]]]
    score_floor: float = 1.0
    calibration: dict[str, Any] = field(default_factory=dict)

    def quantile(self, grouping: str, group: str, level: float, weeks: int) -> np.ndarray:
        """q per week for one group; a group never seen in calibration takes its grouping's
        pooled quantile. Infinite where calibration had too few errors for the level."""
        table = self.quantiles.get(grouping)
        if table is None:
            raise ArscoreError(f"the cash model has no intervals for a breakdown by {grouping!r}")
        values = table.get(group, table.get(POOLED))
        if values is None or f"{level}" not in values:
            raise ArscoreError(f"the cash model has no {level:.0%} intervals for {grouping!r}")
        return np.asarray(values[f"{level}"][:weeks], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (infinite quantiles as null)."""
        return {
            "score_floor": self.score_floor,
            "calibration": self.calibration,
            "quantiles": _nested_map(self.quantiles, lambda q: None if not np.isfinite(q) else q),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Intervals:
        """The intervals described by ``to_dict``."""
        quantiles = _nested_map(data["quantiles"], lambda q: float("inf") if q is None else q)
        return cls(quantiles, float(data["score_floor"]), dict(data.get("calibration", {})))


def _nested_map(tables: dict, convert: Any) -> dict:
    return {
        grouping: {
            group: {level: [convert(q) for q in values] for level, values in levels.items()}
            for group, levels in groups.items()
        }
        for grouping, groups in tables.items()
    }


def cap_at_balance(cash: np.ndarray, balance: np.ndarray) -> np.ndarray:
    """Scale each account's expected cash down so that, over all weeks and sides, it does not
    exceed its open balance: a balance cannot bring in more than is owed on it (the rare
    overpayment aside), and a booster's extrapolation on an unusual account must not."""
    total = cash.sum(axis=(1, 2))
    scale = np.where(total > balance, balance / np.maximum(total, 1e-12), 1.0)
    return cash * scale[:, None, None]


@dataclass
class CashForecastModel:
    """Expected cash per open balance, week and side, and the intervals of its sums."""

    pipeline: FeaturePipeline
    boosters: dict[str, lightgbm.Booster]
    intervals: Intervals
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        formulation = self.metadata.get("formulation")
        if formulation not in FORMULATION_PARTS:
            raise ArscoreError(f"unknown cash model formulation {formulation!r}")
        derived = {
            "model_format": CASH_MODEL_FORMAT_VERSION,
            "feature_names": [*self.pipeline.feature_names_, *WEEK_FEATURES],
            "categorical_levels": {k: list(v) for k, v in self.pipeline.levels_.items()},
            "feature_set_version": FEATURE_SET_VERSION,
        }
        for key, value in derived.items():
            if key in self.metadata and self.metadata[key] != value:
                raise ArscoreError(
                    f"cash model metadata {key!r} disagrees with the fitted pipeline/code"
                )
        self.metadata = {**self.metadata, **derived}
        missing = [name for name in self.booster_names if name not in self.boosters]
        if missing:
            raise ArscoreError(f"the cash model lacks booster(s) {missing}")

    @property
    def formulation(self) -> str:
        """What the boosters estimate: ``rate``, ``hazard`` or ``dollars``."""
        return str(self.metadata["formulation"])

    @property
    def horizon_weeks(self) -> int:
        """How many weeks ahead the model was trained and calibrated for."""
        return int(self.metadata["horizon_weeks"])

    @property
    def booster_names(self) -> list[str]:
        """``<side>_<part>`` of every booster the formulation needs."""
        return [f"{s}_{p}" for s in SIDES for p in FORMULATION_PARTS[self.formulation]]

    def expected_cash(self, snapshots: pd.DataFrame, weeks: int | None = None) -> np.ndarray:
        """Expected dollars from each snapshot row in each week: shape (rows, weeks, 2)."""
        weeks = self.horizon_weeks if weeks is None else weeks
        if not 1 <= weeks <= self.horizon_weeks:
            raise ArscoreError(f"weeks must be 1 to {self.horizon_weeks}, got {weeks}")
        if len(snapshots) == 0:
            return np.zeros((0, weeks, len(SIDES)))
        matrix = account_week_matrix(snapshots, self.pipeline.transform(snapshots), weeks)
        balance = np.repeat(
            pd.to_numeric(snapshots[BALANCE_COLUMN]).to_numpy(dtype=np.float64).clip(0), weeks
        )
        sides = [self._side(side, matrix, balance) for side in SIDES]
        cash = np.stack(sides, axis=-1).reshape(len(snapshots), weeks, len(SIDES))
        return cap_at_balance(cash, balance.reshape(len(snapshots), weeks)[:, 0])

    def _side(self, side: str, matrix: np.ndarray, balance: np.ndarray) -> np.ndarray:
        def predict(part: str) -> np.ndarray:
            return np.asarray(self.boosters[f"{side}_{part}"].predict(matrix), dtype=np.float64)

        if self.formulation == "rate":
            return predict("rate") * balance
        if self.formulation == "hazard":
            return predict("payment") * predict("amount") * balance
        return predict("dollars")

    def save(self, directory: Path) -> None:
        """Write the model's files into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in self.booster_names:
            (directory / f"{name}.txt").write_text(
                self.boosters[name].model_to_string(), encoding="utf-8"
            )
        (directory / INTERVALS_FILE).write_text(_to_json(self.intervals.to_dict()), "utf-8")
        (directory / METADATA_FILE).write_text(_to_json(self.metadata), encoding="utf-8")
        (directory / PIPELINE_FILE).write_bytes(pickle.dumps(self.pipeline, protocol=5))

    @classmethod
    def load(cls, directory: Path) -> CashForecastModel:
        """The model saved in ``directory``; refuses another format or feature set."""
        directory = Path(directory)
        for name in (METADATA_FILE, INTERVALS_FILE, PIPELINE_FILE):
            if not (directory / name).is_file():
                raise ArscoreError(f"{directory}: not a saved cash forecast model, no {name}")
        metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        if metadata.get("model_format") != CASH_MODEL_FORMAT_VERSION:
            raise ArscoreError(
                f"{directory}: cash model format {metadata.get('model_format')!r}, "
                f"this code reads format {CASH_MODEL_FORMAT_VERSION}"
            )
        if metadata.get("feature_set_version") != FEATURE_SET_VERSION:
            raise ArscoreError(
                f"{directory}: cash model built for feature set "
                f"{metadata.get('feature_set_version')!r}, this code computes feature set "
                f"{FEATURE_SET_VERSION!r}; retrain it (arscore forecast train)"
            )
        parts = FORMULATION_PARTS.get(metadata.get("formulation"), ())
        boosters = {}
        for side in SIDES:
            for part in parts:
                path = directory / booster_file(side, part)
                if not path.is_file():
                    raise ArscoreError(f"{directory}: not a saved cash forecast model, no {path}")
                boosters[f"{side}_{part}"] = lightgbm.Booster(
                    model_str=path.read_text(encoding="utf-8")
                )
        intervals = Intervals.from_dict(
            json.loads((directory / INTERVALS_FILE).read_text(encoding="utf-8"))
        )
        # Written by training and pinned by artifact_sha256: load only from a trusted registry.
        pipeline = pickle.loads((directory / PIPELINE_FILE).read_bytes())  # noqa: S301
        return cls(pipeline=pipeline, boosters=boosters, intervals=intervals, metadata=metadata)


def _to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"

"""The typed configuration of the cash forecast: defaults, a YAML file, then ``--set`` overrides.

The same precedence and checks as the collectibility model's ``training.config``: unknown keys
and values of the wrong type are refused with a message naming the key, and the resolved
configuration is logged with every run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from features.cash_model import FORMULATION_PARTS
from features.errors import ArscoreError
from training.config import LightGBMParams, _apply


def forecast_lightgbm() -> LightGBMParams:
    """Booster settings for account-week rows: a faster learning rate than the collectibility
    model (there are 13 rows per balance and the backtest refits once a month)."""
    return LightGBMParams(
        num_leaves=31,
        max_depth=8,
        learning_rate=0.1,
        num_boost_round=300,
        early_stopping_rounds=20,
        min_data_in_leaf=200,
        feature_fraction=0.8,
        bagging_fraction=0.5,
        bagging_freq=1,
        num_threads=2,
    )


@dataclass
class ForecastConfig:
    """Everything a cash forecast training or backtest depends on besides the data."""

    horizon_weeks: int = 13
    """Weeks forecast after the as-of date."""
    formulation: Literal["rate", "hazard", "dollars"] = "rate"
    """What the boosters estimate (features.cash_model); chosen by backtest."""
    snapshot_freq: str = "ME"
    """Calendar of the training snapshots (pandas frequency; month ends by default)."""
    warmup_days: int = 90
    """Snapshots this soon after the first billing lack old balances: not used."""
    train_months: int = 12
    """Training snapshots within this many months before a fit's cutoff (0: all)."""
    valid_dates: int = 2
    """The latest training snapshot dates held out for early stopping."""
    origins: int = 12
    """Rolling monthly origins the backtest reports on."""
    calibration_step_days: int = 7
    """Spacing of the rolling origins whose errors calibrate the intervals (weekly)."""
    refit_months: int = 3
    """Refit the model every this many month ends during the rolling origins (quarterly: the
    backtest's cost is mostly fits, and monthly refits changed little on generated data)."""
    min_calibration_errors: int = 20
    """Errors per week needed before an origin's intervals count in the coverage figures."""
    liquidation_months: int = 12
    """Months of history behind the liquidation-curve baseline."""
    score_floor: float = 1.0
    """Dollars below which a forecast counts as this much in the relative error."""
    max_train_rows: int = 4_000_000
    """Account-week rows per fit at most (a seeded sample of balances above that)."""
    lightgbm: LightGBMParams = field(default_factory=forecast_lightgbm)
    model_name: str = "arscore-cash"
    experiment: str = "arscore-cash"
    seed: int = 20260930

    def __post_init__(self) -> None:
        problems = []
        if self.horizon_weeks < 1:
            problems.append("horizon_weeks must be >= 1")
        if self.formulation not in FORMULATION_PARTS:
            problems.append(f"formulation must be one of {', '.join(FORMULATION_PARTS)}")
        if self.origins < 1 or self.refit_months < 1 or self.calibration_step_days < 1:
            problems.append("origins, refit_months and calibration_step_days must be >= 1")
        if self.valid_dates < 1 or self.min_calibration_errors < 1:
            problems.append("valid_dates and min_calibration_errors must be >= 1")
        if problems:
            raise ArscoreError("forecast config: " + "; ".join(problems))

    @property
    def horizon_days(self) -> int:
        """Days covered by the forecast weeks."""
        return 7 * self.horizon_weeks

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain YAML-ready values."""
        return dataclasses.asdict(self)

    def flat_params(self) -> dict[str, str]:
        """Dotted keys to string values, as MLflow run parameters."""
        flat: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": str(v) for k, v in value.items()})
            else:
                flat[key] = str(value)
        return flat


def load_forecast_config(
    path: Path | None = None, overrides: dict[str, Any] | None = None
) -> ForecastConfig:
    """Defaults, then the YAML file (if any), then overrides (a nested mapping)."""
    config = ForecastConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ArscoreError(f"{path}: forecast config file not found")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ArscoreError(f"{path}: expected a mapping of settings at the top level")
        config = _apply(config, loaded)
    if overrides:
        config = _apply(config, overrides)
    return config


def dump_forecast_config(config: ForecastConfig) -> str:
    """The resolved configuration as YAML text."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)

"""The typed training configuration: defaults, a YAML file, then command-line overrides.

Precedence is defaults < ``--config FILE`` < ``--set key=value`` (dotted keys reach nested
sections, e.g. ``--set lightgbm.num_leaves=15``). Unknown keys and values of the wrong type are
refused with a message naming the key. The resolved configuration is logged with every run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml

from features.errors import ArscoreError

CALIBRATION_METHODS = ("auto", "isotonic", "sigmoid")


@dataclass
class LightGBMParams:
    """LightGBM settings; small trees keep exact per-claim reasons (TreeSHAP) cheap."""

    num_leaves: int = 31
    max_depth: int = 8
    learning_rate: float = 0.05
    num_boost_round: int = 400
    early_stopping_rounds: int = 30
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    cat_smooth: float = 10.0
    max_cat_to_onehot: int = 8
    num_threads: int = 1

    def booster_params(self, objective: str, seed: int) -> dict[str, Any]:
        """Parameters for ``lightgbm.train`` (rounds and early stopping are passed apart)."""
        params = dataclasses.asdict(self)
        del params["num_boost_round"], params["early_stopping_rounds"]
        return {
            **params,
            "objective": objective,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }


@dataclass
class TrainingConfig:
    """Everything a training run depends on besides the data."""

    horizon_days: int = 90
    collected_threshold: float = 0.5
    snapshot_freq: str = "ME"
    warmup_days: int = 90
    train_end: date | None = None
    valid_end: date | None = None
    test_periods: int = 3
    valid_periods: int = 3
    lightgbm: LightGBMParams = field(default_factory=LightGBMParams)
    recovery: LightGBMParams = field(default_factory=LightGBMParams)
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    calibration_folds: int = 5
    contribution_sample: int = 5000
    model_name: str = "arscore"
    experiment: str = "arscore"
    seed: int = 20260930

    def __post_init__(self) -> None:
        problems = []
        if self.horizon_days <= 0:
            problems.append("horizon_days must be > 0")
        if not 0 < self.collected_threshold <= 1:
            problems.append("collected_threshold must be in (0, 1]")
        if self.calibration not in CALIBRATION_METHODS:
            problems.append(f"calibration must be one of {', '.join(CALIBRATION_METHODS)}")
        if self.test_periods < 1 or self.valid_periods < 1:
            problems.append("test_periods and valid_periods must be >= 1")
        if self.train_end and self.valid_end and self.train_end >= self.valid_end:
            problems.append("train_end must be before valid_end")
        if problems:
            raise ArscoreError("training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain YAML-ready values (dates as ISO strings)."""
        return _plain(dataclasses.asdict(self))

    def flat_params(self) -> dict[str, str]:
        """Dotted keys to string values, as MLflow run parameters."""
        return {key: str(value) for key, value in _flatten(self.to_dict()).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, date):
        return value.isoformat()
    return value


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _coerce(key: str, annotation: Any, value: Any) -> Any:
    """A raw YAML/CLI value converted to the field's type, or an error naming the key."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        empty = value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))
        if empty and type(None) in options:
            return None
        return _coerce(key, next(a for a in options if a is not type(None)), value)
    if origin is Literal:
        if value not in typing.get_args(annotation):
            allowed = ", ".join(map(str, typing.get_args(annotation)))
            raise ArscoreError(f"training config: {key} must be one of {allowed}, got {value!r}")
        return value
    try:
        if annotation is date:
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if annotation is bool:
            if isinstance(value, str):
                return {"true": True, "false": False}[value.lower()]
            return bool(value)
        if annotation in (int, float, str):
            converted = annotation(value)
            if annotation is int and isinstance(value, float) and value != converted:
                raise ValueError
            return converted
    except (ValueError, KeyError, TypeError):
        name = getattr(annotation, "__name__", str(annotation))
        raise ArscoreError(f"training config: {key} expects {name}, got {value!r}") from None
    raise ArscoreError(f"training config: {key} cannot be set from {value!r}")


def _apply(target: Any, updates: dict[str, Any], prefix: str = "") -> Any:
    """A copy of a config dataclass with nested updates applied and type-checked."""
    hints = typing.get_type_hints(type(target))
    changes: dict[str, Any] = {}
    for key, value in updates.items():
        dotted = prefix + key
        if key not in hints:
            known = ", ".join(prefix + name for name in hints)
            raise ArscoreError(f"training config: unknown key {dotted!r} (known: {known})")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ArscoreError(f"training config: {dotted} expects a mapping of settings")
            changes[key] = _apply(current, value, dotted + ".")
        else:
            changes[key] = _coerce(dotted, hints[key], value)
    return dataclasses.replace(target, **changes)


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """``["lightgbm.num_leaves=15", "seed=3"]`` as a nested mapping (values still text)."""
    nested: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ArscoreError(f"override {assignment!r}: expected KEY=VALUE")
        *parents, leaf = key.strip().split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value.strip()
    return nested


def load_config(
    path: Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainingConfig:
    """Defaults, then the YAML file (if any), then overrides (nested mapping or dotted keys)."""
    config = TrainingConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ArscoreError(f"{path}: training config file not found")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ArscoreError(f"{path}: expected a mapping of settings at the top level")
        config = _apply(config, loaded)
    if overrides:
        config = _apply(config, overrides)
    return config


def dump_config(config: TrainingConfig) -> str:
    """The resolved configuration as YAML text."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)

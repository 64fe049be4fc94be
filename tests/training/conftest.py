"""Shared fixtures of the model-training tests: a tiny labelled history, a tiny config, and an
MLflow registry on a temporary SQLite file."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.history import validate_history
from features.snapshots import LabelConfig, build_snapshots, snapshot_calendar
from tests.factories import TEST_KEY
from training.config import TrainingConfig, load_config

TINY_END = datetime.date(2026, 9, 30)


@pytest.fixture(scope="session")
def tiny_snapshots() -> pd.DataFrame:
    """Monthly labelled snapshots of a 3,000-claim synthetic history (24 months)."""
    from training.synthetic import GeneratorConfig, generate_history

    claims, transactions = generate_history(
        GeneratorConfig(n_claims=3_000, seed=11, end_date=TINY_END)
    )
    history = validate_history(claims, transactions, TEST_KEY)
    start = history.claims["billed_date"].min() + pd.Timedelta(days=90)
    dates = snapshot_calendar(start, pd.Timestamp(TINY_END))
    return build_snapshots(history, dates, LabelConfig(90, 0.5), data_end=pd.Timestamp(TINY_END))


@pytest.fixture
def tiny_config() -> TrainingConfig:
    """A config for seconds-long fits: few, small trees."""
    return load_config(
        overrides={
            "lightgbm": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
            "recovery": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
            "contribution_sample": 300,
        }
    )


@pytest.fixture(scope="session")
def migrated_registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with its schema created once (migrations are slow)."""
    import mlflow

    database = tmp_path_factory.mktemp("registry-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{database.as_posix()}").search_experiments()
    return database


@pytest.fixture
def mlflow_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_registry_file: Path
) -> str:
    """ARSCORE_MLFLOW_TRACKING_URI on a fresh copy of an empty SQLite registry; promotion log
    beside it."""
    database = tmp_path / "registry" / "mlflow.db"
    database.parent.mkdir()
    shutil.copyfile(migrated_registry_file, database)
    uri = f"sqlite:///{database.as_posix()}"
    monkeypatch.setenv("ARSCORE_MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ARSCORE_PROMOTION_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    return uri

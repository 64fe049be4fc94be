"""Fixtures of the HTTP app tests: a tiny trained model (saved and registered), apps on SQLite
and PostgreSQL through their lifespan, API keys per role, and request payloads built from a
synthetic history. Import the fixtures explicitly: ``from tests.serving.fixtures_app import *``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.history import History, validate_history
from features.model import CollectibilityModel
from serving.api.app import create_app
from serving.settings import Settings
from tests.factories import TEST_KEY
from tests.model_factory import fit_small_model, labelled_snapshots
from training.synthetic import GeneratorConfig, generate_history

AS_OF = pd.Timestamp("2025-09-30")
ROLES = ("scorer", "collector", "auditor", "admin")


@dataclass(frozen=True)
class RawHistory:
    """A synthetic history as an RCM system would send it (raw patient_id included)."""

    claims: pd.DataFrame
    transactions: pd.DataFrame

    def validated(self) -> History:
        """The same history through features.history.validate_history."""
        return validate_history(self.claims, self.transactions, TEST_KEY)


@pytest.fixture(scope="session")
def raw_history() -> RawHistory:
    """1,200 synthetic claims over a year ending 2025-09-30."""
    config = GeneratorConfig(n_claims=1200, seed=21, months=12, end_date=AS_OF.date())
    claims, transactions = generate_history(config)
    return RawHistory(claims.astype({"patient_id": "string"}), transactions)


@pytest.fixture(scope="session")
def tiny_models(raw_history: RawHistory) -> tuple[CollectibilityModel, CollectibilityModel]:
    """Two small models (20 rounds) fitted on a few hundred snapshot rows: A and B differ."""
    snapshots = labelled_snapshots(raw_history.validated(), months=10)
    rows = snapshots[snapshots["collected"].notna().to_numpy()].sample(600, random_state=0)
    return fit_small_model(rows, rounds=20, seed=1), fit_small_model(rows, rounds=12, seed=2)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, tiny_models) -> tuple[Path, Path]:
    """The two models saved as directories."""
    root = tmp_path_factory.mktemp("models")
    dirs = (root / "a" / "collectibility_model", root / "b" / "collectibility_model")
    for model, directory in zip(tiny_models, dirs, strict=True):
        model.save(directory)
    return dirs


@dataclass(frozen=True)
class Registry:
    """An MLflow registry (SQLite) holding the two models as versions 1 and 2 of 'arscore'."""

    tracking_uri: str
    versions: tuple[str, str]

    def set_alias(self, alias: str, version: str) -> None:
        """Point an alias at a version (what `arscore models promote` does)."""
        self.client().set_registered_model_alias("arscore", alias, version)

    def client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def registry(tmp_path_factory, model_dirs, tiny_models, raw_history) -> Registry:
    """Both models registered the way training registers them; champion -> version 1.

    The registry's URI is in the environment only while registering: the server under test
    must find it through its settings alone."""
    from training import registry as training_registry

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    example = labelled_snapshots(raw_history.validated(), months=1).iloc[:3]
    versions = []
    with _environment(
        **{
            training_registry.TRACKING_URI_ENV: uri,
            training_registry.PROMOTION_LOG_ENV: str(root / "promotions.jsonl"),
        }
    ):
        for model, directory in zip(tiny_models, model_dirs, strict=True):
            rows = example[model.input_columns].reset_index(drop=True)
            registered = training_registry.log_training_run(
                model_name="arscore",
                experiment="serving-tests",
                run_name=directory.parent.name,
                params={"rounds": "tiny"},
                config_yaml="tiny: true\n",
                metrics={},
                model_dir=directory,
                version_tags={},
                input_example=rows,
                output_example=model.score(rows).reset_index(drop=True),
            )
            versions.append(registered.version)
    found = Registry(uri, (versions[0], versions[1]))
    found.set_alias("champion", versions[0])
    return found


def app_settings(database_url: str, model_uri: str, **overrides: Any) -> Settings:
    """Settings of a test app (no environment read besides pydantic-settings' own)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "model_uri": model_uri,
        "pseudonym_key": TEST_KEY.decode("ascii"),
        "max_batch_items": 50,
        "threadpool_size": 16,
        "db_pool_size": 16,
        "tune_gc": False,  # the test process creates many apps; freezing would keep them all
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class RunningApp:
    """An app through its lifespan, a TestClient on it and one API key per role."""

    app: FastAPI
    client: TestClient
    tokens: dict[str, str]

    def headers(self, role: str = "scorer") -> dict[str, str]:
        """Authorization header of a key of ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def start_app(settings: Settings) -> Iterator[RunningApp]:
    """Create the app, run its lifespan, create keys; stop it afterwards."""
    app = create_app(settings)
    with TestClient(app) as client:
        tokens = {role: app.state.keys.create(role, f"test {role}")[1] for role in ROLES}
        yield RunningApp(app, client, tokens)


@pytest.fixture
def running_app(db_url: str, model_dirs) -> Iterator[RunningApp]:
    """The app on SQLite, then on PostgreSQL, serving model A from its directory."""
    yield from start_app(app_settings(db_url, str(model_dirs[0])))


@pytest.fixture
def sqlite_app(tmp_path, model_dirs) -> Iterator[RunningApp]:
    """The app on a SQLite file, serving model A from its directory."""
    yield from start_app(app_settings(f"sqlite:///{tmp_path}/arscore.db", str(model_dirs[0])))


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def rows_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts (dates ISO, missing values null)."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def score_item(raw: RawHistory, claim_id: str, as_of: pd.Timestamp = AS_OF) -> dict[str, Any]:
    """A score request item: the claim and its transactions up to ``as_of``."""
    claim = rows_of(raw.claims[raw.claims["claim_id"] == claim_id])[0]
    mine = raw.transactions[
        (raw.transactions["claim_id"] == claim_id) & (raw.transactions["date"] <= as_of)
    ]
    transactions = rows_of(mine.drop(columns=["claim_id"]))
    return {**claim, "transactions": transactions, "as_of": as_of.date().isoformat()}


def open_claim_ids(raw: RawHistory, as_of: pd.Timestamp = AS_OF) -> list[str]:
    """Claims with an open balance as of ``as_of`` (what a caller would score)."""
    from features.snapshots import build_snapshots

    snapshots = build_snapshots(raw.validated(), [as_of], labels=None)
    return snapshots["claim_id"].astype(str).tolist()


def history_body(raw: RawHistory, claim_ids: list[str] | None = None) -> dict[str, Any]:
    """A POST /v1/history body with some (default all) claims and their transactions."""
    claims = raw.claims if claim_ids is None else raw.claims[raw.claims["claim_id"].isin(claim_ids)]
    wanted = raw.transactions["claim_id"].isin(claims["claim_id"])
    return {"claims": rows_of(claims), "transactions": rows_of(raw.transactions[wanted])}

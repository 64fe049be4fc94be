"""Model loading from the registry alias, SHA-256 and feature-set checks, reload by admins."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, datetime

import pytest

from features import FEATURE_SET_VERSION
from features.model import METADATA_FILE, artifact_sha256
from serving.api.model_sync import ModelWatcher, publish
from serving.scoring.loader import ModelLoadError, load_directory, load_model, saved_model_directory
from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    app_settings,
    model_dirs,
    open_claim_ids,
    raw_history,
    registry,
    score_item,
    start_app,
    tiny_models,
)

NOW = datetime(2025, 10, 1, tzinfo=UTC)
CHAMPION = "models:/arscore@champion"


@pytest.fixture
def registry_app(tmp_path, registry):
    registry.set_alias("champion", registry.versions[0])
    settings = app_settings(
        f"sqlite:///{tmp_path}/a.db", CHAMPION, mlflow_tracking_uri=registry.tracking_uri
    )
    yield from start_app(settings)
    registry.set_alias("champion", registry.versions[0])


def test_loader_champion_alias_resolves_version_and_verifies_sha(registry, model_dirs):
    registry.set_alias("champion", registry.versions[0])
    loaded = load_model(CHAMPION, registry.tracking_uri, now=NOW)
    assert (loaded.name, loaded.version, loaded.alias) == (
        "arscore",
        registry.versions[0],
        "champion",
    )
    assert loaded.sha256 == artifact_sha256(model_dirs[0])


def test_loader_other_process_default_registry_still_loads_from_given_one(
    registry, tmp_path, monkeypatch
):
    """The download must use the registry arscore was given, not MLflow's process default."""
    import mlflow

    elsewhere = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", elsewhere)
    previous = mlflow.get_registry_uri()
    mlflow.set_registry_uri(elsewhere)
    try:
        registry.set_alias("champion", registry.versions[0])
        loaded = load_model(CHAMPION, registry.tracking_uri, now=NOW)
    finally:
        mlflow.set_registry_uri(previous)
    assert loaded.version == registry.versions[0]


def test_loader_sha_mismatch_refuses(registry):
    client = registry.client()
    version = registry.versions[1]
    client.set_model_version_tag("arscore", version, "artifact_sha256", "f" * 64)
    try:
        with pytest.raises(ModelLoadError, match="does not match the registry record"):
            load_model(f"models:/arscore/{version}", registry.tracking_uri, now=NOW)
    finally:
        client.set_model_version_tag(
            "arscore", version, "artifact_sha256", _true_sha(registry, version)
        )


def _true_sha(registry, version: str) -> str:
    """The hash training recorded on the run (the version tag is a copy of it)."""
    run_id = registry.client().get_model_version("arscore", version).tags["run_id"]
    return registry.client().get_run(run_id).data.tags["artifact_sha256"]


def test_loader_version_without_sha_tag_refuses(registry):
    client = registry.client()
    version = registry.versions[1]
    client.delete_model_version_tag("arscore", version, "artifact_sha256")
    try:
        with pytest.raises(ModelLoadError, match="no 'artifact_sha256' tag"):
            load_model(f"models:/arscore/{version}", registry.tracking_uri, now=NOW)
    finally:
        client.set_model_version_tag(
            "arscore", version, "artifact_sha256", _true_sha(registry, version)
        )


def test_saved_model_directory_untagged_name_found_under_artifacts(tmp_path, model_dirs):
    shutil.copytree(model_dirs[0], tmp_path / "artifacts" / "model_a")
    found = saved_model_directory(tmp_path, "artifacts/collectibility_model")
    assert found == tmp_path / "artifacts" / "model_a"
    shutil.copytree(model_dirs[1], tmp_path / "artifacts" / "model_b")
    with pytest.raises(ModelLoadError, match="2 candidates"):
        saved_model_directory(tmp_path, "artifacts/collectibility_model")


def test_loader_unknown_alias_refuses_with_next_step(registry):
    with pytest.raises(ModelLoadError, match="no alias 'nightly'.*promote"):
        load_model("models:/arscore@nightly", registry.tracking_uri, now=NOW)


def test_loader_other_feature_set_version_refuses(tmp_path, model_dirs):
    copy = tmp_path / "old_model"
    shutil.copytree(model_dirs[0], copy)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    metadata["feature_set_version"] = "0"
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    expected = f"built for feature set '0'.*computes feature set '{FEATURE_SET_VERSION}'"
    with pytest.raises(ModelLoadError, match=expected):
        load_directory(copy, now=NOW)


def test_app_start_with_other_feature_set_version_fails(tmp_path, model_dirs):
    copy = tmp_path / "old_model"
    shutil.copytree(model_dirs[0], copy)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    metadata["feature_set_version"] = "0"
    (copy / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match="retrain"):
        next(start_app(app_settings(f"sqlite:///{tmp_path}/a.db", str(copy))))


def test_models_current_reports_the_resolved_champion(registry_app, registry):
    response = registry_app.client.get(
        "/v1/models/current", headers=registry_app.headers("collector")
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["version"], body["alias"]) == (
        "arscore",
        registry.versions[0],
        "champion",
    )
    assert body["feature_set_version"] == FEATURE_SET_VERSION and len(body["artifact_sha256"]) == 64
    assert registry_app.client.get("/v1/models/current").status_code == 401


def test_models_reload_swaps_to_new_champion_without_failing_requests(
    registry_app, registry, raw_history
):
    app = registry_app
    items = [score_item(raw_history, c) for c in open_claim_ids(raw_history)[:2]]
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def keep_scoring() -> None:
        while not stop.is_set():
            response = app.client.post("/v1/scores", json={"items": items}, headers=app.headers())
            version = (
                response.json()["scores"][0]["model"]["version"]
                if response.status_code == 200
                else ""
            )
            results.append((response.status_code, version))

    workers = [threading.Thread(target=keep_scoring) for _ in range(3)]
    for worker in workers:
        worker.start()
    registry.set_alias("champion", registry.versions[1])
    reload = app.client.post("/v1/models/reload", headers=app.headers("admin"))
    after = app.client.post("/v1/scores", json={"items": items}, headers=app.headers()).json()
    stop.set()
    for worker in workers:
        worker.join()
    assert reload.status_code == 200, reload.text
    assert reload.json()["changed"] is True
    assert reload.json()["previous"]["version"] == registry.versions[0]
    assert reload.json()["current"]["version"] == registry.versions[1]
    assert after["scores"][0]["model"]["version"] == registry.versions[1]
    assert results and all(status == 200 for status, _ in results)
    assert {v for _, v in results} <= set(registry.versions)
    record = app.app.state.audit.get(after["scores"][0]["score_id"])
    assert record.model_version == registry.versions[1]


def test_models_reload_non_admin_403(registry_app):
    response = registry_app.client.post("/v1/models/reload", headers=registry_app.headers("scorer"))
    assert response.status_code == 403


def test_models_reload_refused_model_409_keeps_current(registry_app, registry):
    client = registry.client()
    version = registry.versions[1]
    client.set_model_version_tag("arscore", version, "artifact_sha256", "0" * 64)
    registry.set_alias("champion", version)
    try:
        response = registry_app.client.post(
            "/v1/models/reload", headers=registry_app.headers("admin")
        )
    finally:
        client.set_model_version_tag(
            "arscore", version, "artifact_sha256", _true_sha(registry, version)
        )
    assert response.status_code == 409
    assert "does not match the registry record" in response.json()["detail"]
    current = registry_app.client.get("/v1/models/current", headers=registry_app.headers()).json()
    assert current["version"] == registry.versions[0]


def _version(app) -> str:
    response = app.client.get("/v1/models/current", headers=app.headers())
    return response.json()["version"]


def test_models_reload_reaches_the_other_workers(tmp_path, registry, raw_history):
    """Two apps on one database stand for two worker processes: the one that takes the reload
    publishes it, the other follows within model_sync_seconds and scores with the new model."""
    first, second = registry.versions[0], registry.versions[1]
    registry.set_alias("champion", first)
    settings = app_settings(
        f"sqlite:///{tmp_path}/shared.db",
        CHAMPION,
        mlflow_tracking_uri=registry.tracking_uri,
        model_sync_seconds=0.1,
    )
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    try:
        for taker in start_app(settings):
            for other in start_app(settings):
                assert _version(other) == first
                registry.set_alias("champion", second)
                reload = taker.client.post("/v1/models/reload", headers=taker.headers("admin"))
                assert reload.status_code == 200 and _version(taker) == second
                deadline = time.monotonic() + 15
                while _version(other) != second and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert _version(other) == second
                scored = other.client.post(
                    "/v1/scores", json={"items": [item]}, headers=other.headers()
                ).json()
                assert scored["scores"][0]["model"]["version"] == second
                assert other.app.state.model_generation == taker.app.state.model_generation
    finally:
        registry.set_alias("champion", first)


def test_model_watcher_follows_only_newer_generations_and_skips_unservable_ones(db_url, registry):
    first, second = registry.versions[0], registry.versions[1]
    registry.set_alias("champion", first)
    settings = app_settings(
        db_url,
        CHAMPION,
        mlflow_tracking_uri=registry.tracking_uri,
        model_sync_seconds=0,  # no thread: the test calls check() itself
    )
    client = registry.client()
    try:
        for running in start_app(settings):
            state = running.app.state
            engine = state.audit.engine
            watcher = ModelWatcher(state, settings, engine)
            assert watcher.check() is False  # nothing published since start
            registry.set_alias("champion", second)
            publish(engine, load_model(CHAMPION, registry.tracking_uri, now=NOW))
            assert watcher.check() is True and state.scorer.loaded.version == second
            assert watcher.check() is False  # already there
            client.set_model_version_tag("arscore", first, "artifact_sha256", "0" * 64)
            registry.set_alias("champion", first)
            try:
                publish(engine, state.scorer.loaded)
                assert watcher.check() is False  # refused: the current model stays
                assert state.scorer.loaded.version == second
                assert watcher.check() is False  # and is not retried every tick
            finally:
                client.set_model_version_tag(
                    "arscore", first, "artifact_sha256", _true_sha(registry, first)
                )
    finally:
        registry.set_alias("champion", first)

"""Probes, metrics, error bodies and logs: what operators see, and what they never see."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

import gc
import io
import json
import logging
import threading

from fastapi.testclient import TestClient

from serving.api.app import GC_THRESHOLDS
from serving.api.json_logs import JsonFormatter, configure_logging, logging_config
from serving.audit.store import AuditStore
from serving.store.engine import make_engine
from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    app_settings,
    model_dirs,
    open_claim_ids,
    raw_history,
    running_app,
    score_item,
    sqlite_app,
    start_app,
    tiny_models,
)


def test_healthz_without_key_200(sqlite_app):
    response = sqlite_app.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_model_loaded_and_audit_writable_200(running_app):
    response = running_app.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"model_loaded": True, "audit_store_writable": True},
    }


def test_readyz_audit_store_unreachable_503(sqlite_app, tmp_path):
    state = sqlite_app.app.state
    working = state.audit
    broken = make_engine(f"sqlite:///file:{tmp_path}/missing/none.db?mode=ro&uri=true")
    state.audit = AuditStore(broken)
    try:
        response = sqlite_app.client.get("/readyz")
    finally:
        state.audit = working
    assert response.status_code == 503
    assert response.json()["checks"] == {"model_loaded": True, "audit_store_writable": False}


class BlockingScorer:
    """Holds every score call until released, to fill the worker threads."""

    def __init__(self, inner):
        self.inner = inner
        self.loaded = inner.loaded
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def score(self, *args, **kwargs):
        self.entered.release()
        assert self.release.wait(30)
        return self.inner.score(*args, **kwargs)


def test_probes_answer_while_every_scoring_thread_is_busy(sqlite_app, raw_history):
    app = sqlite_app
    blocking = BlockingScorer(app.app.state.scorer)
    app.app.state.scorer = blocking
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    statuses: list[int] = []

    def score() -> None:
        response = app.client.post("/v1/scores", json={"items": [item]}, headers=app.headers())
        statuses.append(response.status_code)

    threads_in_pool = app.app.state.settings.threadpool_size
    threads = [threading.Thread(target=score) for _ in range(threads_in_pool + 2)]
    for thread in threads:
        thread.start()
    for _ in range(threads_in_pool):
        assert blocking.entered.acquire(timeout=30)
    try:
        probes = [app.client.get(path).status_code for path in ("/healthz", "/readyz", "/metrics")]
        assert statuses == [], "a score finished while the scorer was held"
    finally:
        blocking.release.set()
        for thread in threads:
            thread.join()
    assert probes == [200, 200, 200]
    assert statuses == [200] * len(threads)


def test_metrics_counts_requests_by_route_template_scores_by_band_and_model(
    sqlite_app, raw_history
):
    app = sqlite_app
    items = [score_item(raw_history, c) for c in open_claim_ids(raw_history)[:4]]
    scores = app.client.post("/v1/scores", json={"items": items}, headers=app.headers()).json()
    score_id = scores["scores"][0]["score_id"]
    app.client.get(f"/v1/audit/{score_id}", headers=app.headers("auditor"))
    app.client.get("/v1/nowhere")
    text = app.client.get("/metrics").text
    assert 'arscore_http_requests_total{method="POST",route="/v1/scores",status="200"} 1.0' in text
    assert 'route="/v1/audit/{score_id}",status="200"' in text
    assert score_id not in text
    assert 'route="unmatched",status="404"' in text
    assert 'arscore_http_request_duration_seconds_bucket{le="0.001",method="POST"' in text
    bands = [s["risk_band"] for s in scores["scores"]]
    for band in set(bands):
        assert f'arscore_scores_total{{risk_band="{band}"}} {float(bands.count(band))}' in text
    assert 'arscore_model_info{alias="",name="arscore-test",sha256="' in text
    stages = ("parse", "inputs", "history", "snapshot", "features", "predict", "contributions")
    for stage in (*stages, "reasons", "policy", "audit"):
        assert f'arscore_scoring_stage_seconds_count{{stage="{stage}"}} 1.0' in text


def test_unexpected_error_500_with_error_id_and_no_trace(sqlite_app, raw_history, caplog):
    app = sqlite_app

    class Exploding:
        loaded = app.app.state.scorer.loaded

        def score(self, *args, **kwargs):
            raise RuntimeError("detail that must not leak: PATIENT-77")

    app.app.state.scorer = Exploding()
    client = TestClient(app.app, raise_server_exceptions=False)
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    with caplog.at_level(logging.ERROR):
        response = client.post("/v1/scores", json={"items": [item]}, headers=app.headers())
    assert response.status_code == 500
    body = response.json()
    assert body["detail"] == "internal error" and len(body["error_id"]) == 32
    assert "PATIENT-77" not in response.text and "Traceback" not in response.text
    lines = [JsonFormatter().format(r) for r in caplog.records]
    logged = [json.loads(line) for line in lines if body["error_id"] in line]
    assert logged and logged[0]["exc_type"] == "RuntimeError"
    assert all("PATIENT-77" not in line and "Traceback" not in line for line in lines)


def test_json_formatter_exception_as_type_and_site_without_message_or_trace():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.serving.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ValueError("patient P-1 secret")
    except ValueError:
        logger.exception("failed", extra={"request_id": "r1"})
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "failed" and entry["request_id"] == "r1"
    assert entry["exc_type"] == "ValueError" and entry["exc_func"].startswith("test_json_formatter")
    assert "P-1" not in line and "Traceback" not in line


def test_logging_config_routes_uvicorn_through_json(monkeypatch):
    config = logging_config("warning", access_log=False)
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"
    assert config["root"]["level"] == "WARNING"
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:], root.level = saved


def test_start_up_tunes_the_garbage_collector_only_when_asked(tmp_path, model_dirs):
    before = gc.get_threshold()
    url = f"sqlite:///{tmp_path}/gc.db"
    try:
        for tune, frozen in ((False, False), (True, True)):
            gc.unfreeze()
            settings = app_settings(url, str(model_dirs[0]), tune_gc=tune)
            for running in start_app(settings):
                assert (gc.get_freeze_count() > 0) is frozen
                assert (gc.get_threshold() == GC_THRESHOLDS) is tune
                assert running.client.get("/readyz").status_code == 200
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

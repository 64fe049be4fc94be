"""The app behind a real uvicorn server on 127.0.0.1, and the `arscore serve` command."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from arscore.commands_serve import listening_socket
from serving.access.keys import KeyStore
from serving.api.app import create_app
from serving.store.engine import make_engine
from tests.factories import TEST_KEY
from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    app_settings,
    model_dirs,
    open_claim_ids,
    raw_history,
    score_item,
    tiny_models,
)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


class LiveServer:
    """The app served by uvicorn (uvloop, httptools) in a background thread."""

    def __init__(self, settings):
        self.app = create_app(settings)
        self.sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, loop="uvloop", http="httptools", log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def live_server(db_url, model_dirs) -> Iterator[tuple[LiveServer, str]]:
    with LiveServer(app_settings(db_url, str(model_dirs[0]), threadpool_size=8)) as server:
        token = server.app.state.keys.create("scorer", "load test")[1]
        yield server, token


def test_listening_socket_accepted_connections_have_tcp_nodelay():
    sock = listening_socket("127.0.0.1", 0)
    sock.listen()
    with socket.create_connection(sock.getsockname()):
        accepted, _ = sock.accept()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        accepted.close()
    sock.close()


@pytest.mark.slow
def test_server_8_threads_x_200_requests_one_audit_record_per_score_chain_intact(
    live_server, raw_history
):
    server, token = live_server
    items = [score_item(raw_history, c) for c in open_claim_ids(raw_history)[:40]]
    score_ids: list[list[str]] = [[] for _ in range(8)]
    failures: list[int] = []

    def client_thread(n: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            for i in range(200):
                body = {"items": [items[(n * 200 + i) % len(items)]], "reasons": i % 2 == 0}
                response = client.post("/v1/scores", json=body)
                if response.status_code != 200:
                    failures.append(response.status_code)
                    continue
                score_ids[n] += [s["score_id"] for s in response.json()["scores"]]

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    returned = [score_id for ids in score_ids for score_id in ids]
    assert failures == []
    assert len(returned) == len(set(returned)) == 1600
    audit = server.app.state.audit
    with audit.engine.connect() as connection:
        recorded = (
            connection.execute(sa.text("SELECT score_id FROM audit_records WHERE kind = 'score'"))
            .scalars()
            .all()
        )
    assert sorted(recorded) == sorted(returned)
    report = audit.verify()
    assert report.ok and report.n_records == 1600


def test_server_probes_scores_and_metrics_over_http(live_server, raw_history):
    server, token = live_server
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        response = client.post("/v1/scores", json={"items": [item]}, headers={"X-API-Key": token})
        assert response.status_code == 200
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'route="/v1/scores",status="200"' in metrics.text
        docs = client.get("/openapi.json").json()
        assert {"/v1/scores", "/v1/history", "/v1/models/current", "/v1/models/reload"} <= set(
            docs["paths"]
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_serve_command_two_workers_scores_and_stops(tmp_path, model_dirs, raw_history):
    port = _free_port()
    database_url = f"sqlite:///{tmp_path}/serve.db"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ARSCORE_PSEUDONYM_KEY": TEST_KEY.decode(),
        "ARSCORE_LOG_LEVEL": "INFO",
    }
    command = [
        sys.executable,
        "-m",
        "arscore.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--model-uri",
        str(model_dirs[0]),
        "--database-url",
        database_url,
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "arscore serve did not become ready"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        token = KeyStore(make_engine(database_url)).create("scorer", "serve test")[1]
        item = score_item(raw_history, open_claim_ids(raw_history)[0])
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers) as client:
            statuses = {
                client.post("/v1/scores", json={"items": [item]}).status_code for _ in range(6)
            }
        assert statuses == {200}
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    json_lines = [line for line in stderr.splitlines() if line.startswith("{")]
    assert json_lines, "expected JSON log lines on stderr"
    assert "Traceback" not in stderr

"""Training against a real MLflow tracking server (SQLite backend, proxied artifacts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from training import registry
from training.train import train

SERVER_START_TIMEOUT = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"mlflow server exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(
        f"mlflow server not healthy after {SERVER_START_TIMEOUT}s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free local port in its own session; always terminated."""
    port = free_port()
    log = tmp_path / "server.log"
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{(tmp_path / 'server.db').as_posix()}",
        "--artifacts-destination",
        str(tmp_path / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log.open("w") as output:
        server = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, log)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers: its own session
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.mark.integration
def test_train_against_mlflow_server_registers_version_aliased_challenger(
    mlflow_server, tiny_snapshots, tiny_config, tmp_path, monkeypatch
):
    monkeypatch.delenv("ARSCORE_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("ARSCORE_PROMOTION_LOG", str(tmp_path / "promotions.jsonl"))
    monkeypatch.chdir(tmp_path)
    result = train(
        tiny_snapshots, tiny_config, tmp_path / "out", created_at=datetime(2026, 10, 1, tzinfo=UTC)
    )
    client = registry.client()
    version = client.get_model_version_by_alias("arscore", "challenger")
    assert str(version.version) == result.version
    assert version.tags["artifact_sha256"] == result.artifact_sha256
    assert result.tracking_uri == mlflow_server
    run = client.get_run(result.run_id)
    assert run.data.metrics["test_lightgbm_roc_auc"] == pytest.approx(
        result.metrics["lightgbm"]["roc_auc"]
    )
    artifacts = {item.path for item in client.list_artifacts(result.run_id)}
    assert {"collectibility_model", "config", "report"} <= artifacts
    assert not (tmp_path / "models").exists()

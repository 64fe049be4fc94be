"""No claim or patient identifier from a request reaches a log line of a real `arscore serve`."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from serving.access.keys import KeyStore
from serving.store.engine import make_engine
from tests.factories import TEST_KEY
from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    model_dirs,
    open_claim_ids,
    raw_history,
    score_item,
    tiny_models,
)

pytestmark = pytest.mark.integration
CLAIM_ID = "CLMSECRET0042"
PATIENT_ID = "PATSECRET0042"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "arscore serve did not become ready"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)


def _requests_with_identifiers(url: str, scorer: str, collector: str, item: dict) -> set[int]:
    """Identifiers in paths, queries and bodies, on routes that answer 2xx, 4xx and 422."""
    item = {**item, "claim_id": CLAIM_ID, "patient_id": PATIENT_ID}
    for transaction in item["transactions"]:
        transaction.pop("claim_id", None)
    history = {
        "claims": [{k: v for k, v in item.items() if k not in ("transactions", "as_of")}],
        "transactions": [{**t, "claim_id": CLAIM_ID} for t in item["transactions"]],
    }
    statuses = set()
    with httpx.Client(base_url=url, timeout=60) as client:
        as_scorer = {"Authorization": f"Bearer {scorer}"}
        as_collector = {"Authorization": f"Bearer {collector}"}
        statuses.add(client.post("/v1/history", json=history, headers=as_scorer).status_code)
        statuses.add(
            client.post("/v1/scores", json={"items": [item]}, headers=as_scorer).status_code
        )
        bad = {"items": [{**item, "total_charge": "not money"}]}
        statuses.add(client.post("/v1/scores", json=bad, headers=as_scorer).status_code)
        action = {"action": "worked", "outcome": "no_contact"}
        statuses.add(
            client.post(
                f"/v1/accounts/{CLAIM_ID}/actions", json=action, headers=as_collector
            ).status_code
        )
        statuses.add(client.get(f"/v1/audit/{CLAIM_ID}", headers=as_scorer).status_code)
        statuses.add(
            client.get(f"/v1/worklist?team={PATIENT_ID}", headers=as_collector).status_code
        )
    return statuses


@pytest.mark.slow
def test_serve_logs_route_templates_never_claim_or_patient_ids(tmp_path, model_dirs, raw_history):
    port = _free_port()
    database_url = f"sqlite:///{tmp_path}/serve.db"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ARSCORE_PSEUDONYM_KEY": TEST_KEY.decode(),
        "ARSCORE_LOG_LEVEL": "INFO",
        "ARSCORE_WORKLIST_RESCORE_ON_READ": "false",
    }
    command = [sys.executable, "-m", "arscore.cli", "serve", "--port", str(port)]
    command += ["--model-uri", str(model_dirs[0]), "--database-url", database_url]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(process, url)
        keys = KeyStore(make_engine(database_url))
        scorer, collector = keys.create("scorer", "logs")[1], keys.create("collector", "logs")[1]
        item = score_item(raw_history, open_claim_ids(raw_history)[0])
        statuses = _requests_with_identifiers(url, scorer, collector, item)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    assert {200, 422} <= statuses and len(statuses) >= 3, statuses
    assert CLAIM_ID not in stderr and PATIENT_ID not in stderr
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "arscore.access"]
    routes = {r["route"] for r in access}
    assert {"/v1/accounts/{claim_id}/actions", "/v1/audit/{score_id}", "/v1/scores"} <= routes
    assert not [r for r in records if r["logger"] == "uvicorn.access"]

"""Factories of the worklist and action tests: hand-built worklist rows, an app with the
worklist and accounts routers, keys per role (an ``approver`` among them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.api import deps
from serving.api.app import create_app
from serving.audit.records import AuditEntry
from serving.settings import Settings
from serving.worklist.rescoring import history_fingerprint
from serving.worklist.store import WorklistRow, WorklistState, WorklistStore
from tests.serving.fixtures_app import RunningApp

TODAY = date(2026, 10, 15)
ROLES = ("scorer", "collector", "auditor", "admin", "approver")

PATIENT_FACTS: dict[str, Any] = {
    "open_balance": 800.0,
    "payer_balance": 0.0,
    "responsibility": "patient",
    "payer_type": "commercial",
    "patient_state": "TX",
    "last_carc_group": None,
    "last_carc_code": None,
    "n_denials": 0,
    "days_since_last_denial": None,
    "days_since_last_payment": None,
    "appeals_closed": 0,
    "appeals_won": 0,
    "appeal_open": False,
    "dispute_open": False,
    "fap_pending": False,
    "fap_applications": 1,
    "fap_approved": 0,
    "n_statements": 4,
    "days_since_first_statement": 250.0,
    "payment_plans": 0,
    "expected_recovery": 20.0,
    "probability_collected": 0.03,
}
"""A patient balance with documented collection effort and a FAP screen: bad debt allowed."""


def account_row(claim_id: str, priority_cents: int = 1000, **overrides: Any) -> WorklistRow:
    """A scored open balance (patient side, bad debt allowed unless facts say otherwise)."""
    facts = {**PATIENT_FACTS, **overrides.pop("facts", {})}
    balance_cents = int(round(facts["open_balance"] * 100))
    row = WorklistRow(
        claim_id=claim_id,
        as_of=TODAY,
        score_id=f"score-{claim_id}",
        scored_at=datetime(2026, 10, 15, 6, tzinfo=UTC),
        model_name="arscore",
        model_version="1",
        model_sha256="a" * 64,
        policy_version="test-policy",
        payer_id="AETNA01",
        payer_type=facts["payer_type"],
        responsibility=facts["responsibility"],
        open_balance_cents=balance_cents,
        days_in_ar=300,
        aging_bucket="120+",
        last_activity_date=date(2026, 9, 1),
        last_activity_type="statement",
        probability_collected=0.03,
        expected_recovery_cents=2000,
        risk_band="very_low",
        action="bad_debt_write_off",
        expected_net_recovery_cents=None,
        touches=1.0,
        priority_cents=priority_cents,
        on_hold=False,
        reasons=[{"source": "rule", "rule_id": "BD-1", "sentence": "effort documented"}],
        facts=facts,
    )
    return replace(row, **overrides)


def payer_facts(**overrides: Any) -> dict[str, Any]:
    """Facts of a balance still with the payer (PAYER-1 forbids patient actions)."""
    return {"open_balance": 800.0, "payer_balance": 800.0, "responsibility": "payer", **overrides}


def store_rows(engine: Any, rows: list[WorklistRow], model_sha256: str = "a" * 64) -> None:
    """Put rows in the worklist, marked fresh for the engine's history (no rescore on read)."""
    state = WorklistState(
        history_fingerprint(engine),
        model_sha256,
        "test-policy",
        TODAY,
        datetime(2026, 10, 15, 6, tzinfo=UTC),
        len(rows),
    )
    WorklistStore(engine).replace(rows, state)


def worklist_app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningApp]:
    """The app with the worklist and accounts routers, today pinned, a key per role."""
    app: FastAPI = create_app(settings)
    paths = set(app.openapi()["paths"])
    assert {"/v1/worklist", "/v1/accounts/{claim_id}/actions"} <= paths, "routers not included"

    async def pinned_today() -> date:
        return TODAY

    app.dependency_overrides[deps.today] = pinned_today
    with TestClient(app) as client:
        tokens = {role: app.state.keys.create(role, f"test {role}")[1] for role in ROLES}
        tokens["collector2"] = app.state.keys.create("collector", "second collector")[1]
        yield RunningApp(app, client, tokens)


def fresh_rows(app: FastAPI, rows: list[WorklistRow]) -> None:
    """Store rows in a running app's worklist as scored by its model and policy."""
    sha = app.state.scorer.loaded.sha256
    engine = app.state.history.engine
    rows = [replace(r, model_sha256=sha, policy_version=app.state.policy_version) for r in rows]
    app.state.audit.append(
        [
            AuditEntry(
                "score",
                None,
                None,
                r.model_name,
                r.model_version,
                sha,
                r.policy_version,
                r.claim_id,
                {"action": r.action},
                r.score_id,
            )
            for r in rows
        ]
    )
    state = WorklistState(
        history_fingerprint(engine),
        sha,
        app.state.policy_version,
        TODAY,
        datetime(2026, 10, 15, 6, tzinfo=UTC),
        len(rows),
    )
    WorklistStore(engine).replace(rows, state)

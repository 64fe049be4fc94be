"""Factories of the worklist and action tests: hand-built worklist rows, accounts stored as
history with their worklist rows made from it, an app with the worklist, accounts and approvals
routers, and a user with a key per role (an ``approver`` among them)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.snapshots import build_snapshots
from serving.access.users import UserStore
from serving.api import deps
from serving.api.app import create_app
from serving.audit.records import AuditEntry
from serving.history.store import HistoryStore
from serving.policy.facts import policy_columns
from serving.settings import Settings
from serving.worklist.rescoring import history_fingerprint
from serving.worklist.store import WorklistRow, WorklistState, WorklistStore
from tests.factories import claim_row, make_history, tx_row
from tests.serving.fixtures_app import RunningApp

TODAY = date(2026, 10, 15)
ROLES = ("scorer", "collector", "auditor", "admin", "approver")
USERS = {role: f"test-{role}" for role in (*ROLES, "collector2", "approver2")}
"""The user behind each test key: one per role, a second collector and a second approver."""

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
        users = UserStore(app.state.history.engine)
        tokens = {}
        for name, username in USERS.items():
            users.create(username, name.rstrip("2"), f"Test {name}")
            tokens[name] = app.state.keys.create(user=username, label=f"test {name}")[1]
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


def _day(days_before_today: int) -> str:
    return (TODAY - timedelta(days=days_before_today)).isoformat()


@dataclass
class StoredAccount:
    """A claim as the server's history holds it (claims and transactions rows as sent), and the
    worklist row the test wants for it (action, priority)."""

    claim_id: str
    claims: list[dict[str, Any]]
    transactions: list[dict[str, Any]]
    action: str = "bad_debt_write_off"
    priority_cents: int = 1000
    row: dict[str, Any] = field(default_factory=dict)


def patient_account(
    claim_id: str,
    balance: str = "800.00",
    payer_type: str = "commercial",
    extra: tuple[dict[str, Any], ...] = (),
    **row: Any,
) -> StoredAccount:
    """A balance moved to the patient 278 days ago, four statements from 250 days ago, a FAP
    application screened and denied: bad debt allowed by the policy (``PATIENT_FACTS``)."""
    charge = Decimal(balance) + 200
    claims = [
        claim_row(
            claim_id,
            patient_id=f"P-{claim_id}",
            payer_type=payer_type,
            total_charge=str(charge),
            expected_amount=str(charge),
            service_date=_day(320),
            billed_date=_day(315),
        )
    ]
    transactions = [
        tx_row(claim_id, _day(278), "payment", "200.00", party="payer"),
        tx_row(claim_id, _day(278), "transfer", balance, party="patient"),
        *(tx_row(claim_id, _day(250 - 30 * i), "statement") for i in range(4)),
        tx_row(claim_id, _day(240), "fap_application"),
        tx_row(claim_id, _day(230), "fap_decision", reason="denied"),
        *extra,
    ]
    return StoredAccount(claim_id, claims, transactions, **row)


def payer_account(
    claim_id: str, balance: str = "800.00", denial: str | None = None, **row: Any
) -> StoredAccount:
    """A balance still with the payer (PAYER-1 forbids patient actions); ``denial`` "CO-29"
    adds that denial 30 days ago."""
    claims = [
        claim_row(
            claim_id,
            patient_id=f"P-{claim_id}",
            total_charge=balance,
            expected_amount=balance,
            service_date=_day(200),
            billed_date=_day(195),
        )
    ]
    transactions = []
    if denial is not None:
        group, code = denial.split("-")
        transactions.append(tx_row(claim_id, _day(30), "denial", carc_group=group, carc_code=code))
    row.setdefault("action", "follow_up")
    return StoredAccount(claim_id, claims, transactions, **row)


def send_history(app: FastAPI, accounts: list[StoredAccount]) -> None:
    """Store the accounts' claims and transactions as ``POST /v1/history`` does."""
    claims = [c for a in accounts for c in a.claims]
    transactions = [t for a in accounts for t in a.transactions]
    history = make_history(claims, transactions)
    HistoryStore(app.state.history.engine).upsert(history.claims, history.transactions)


def stored_accounts(app: FastAPI, accounts: list[StoredAccount]) -> list[WorklistRow]:
    """Store the accounts as history, then put their worklist rows (facts from their snapshot
    as of TODAY, ``features.snapshots``) in the app's worklist as scored by its model."""
    send_history(app, accounts)
    history = make_history(
        [c for a in accounts for c in a.claims], [t for a in accounts for t in a.transactions]
    )
    snapshots = build_snapshots(history, [pd.Timestamp(TODAY)], labels=None).set_index("claim_id")
    rows = []
    for account in accounts:
        snapshot = snapshots.loc[account.claim_id]
        facts = {
            name: None
            if pd.isna(snapshot[name])
            else snapshot[name].item()
            if hasattr(snapshot[name], "item")
            else snapshot[name]
            for name in policy_columns()
        }
        facts["expected_recovery"] = 20.0
        row = account_row(
            account.claim_id, account.priority_cents, action=account.action, facts=facts
        )
        rows.append(replace(row, **account.row))
    fresh_rows(app, rows)
    return rows

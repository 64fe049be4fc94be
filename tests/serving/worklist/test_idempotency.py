"""A client retry with the same Idempotency-Key records once and answers the same (status and
body); on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from serving.audit.tables import audit_records
from serving.policy.config import load_policy
from serving.worklist.action_checks import ActionRequest
from serving.worklist.actions import record_action
from serving.worklist.store import account_actions, write_off_requests
from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import app_settings
from tests.serving.worklist.factories import (
    TODAY,
    patient_account,
    payer_account,
    stored_accounts,
    worklist_app,
)

WORKED = {"action": "worked", "outcome": "promise_to_pay"}
BAD_DEBT = {"action": "write_off", "category": "bad_debt", "note": "no response to 4 statements"}


@pytest.fixture
def app(db_url, model_dirs, monkeypatch):
    yield from worklist_app(app_settings(db_url, str(model_dirs[0])), monkeypatch)


def _post(app, claim_id, body, key, role="collector"):
    headers = {**app.headers(role), "Idempotency-Key": key}
    return app.client.post(f"/v1/accounts/{claim_id}/actions", json=body, headers=headers)


def _count(app, table, *where) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if where:
        query = query.where(*where)
    with app.app.state.audit.engine.connect() as connection:
        return connection.execute(query).scalar_one()


def test_action_retry_with_same_key_records_once_and_answers_the_same(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])

    first = _post(app, "C1", WORKED, "retry-1")
    retry = _post(app, "C1", WORKED, "retry-1")

    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    assert "Idempotent-Replayed" not in first.headers
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert _count(app, account_actions) == 1
    assert _count(app, audit_records, audit_records.c.kind == "account_action") == 1


def test_pending_write_off_retry_files_one_request(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])

    first = _post(app, "C1", BAD_DEBT, "7f0c6a2e-0d1b-4c52-9a55-3c9f1e1b2d40")
    retry = _post(app, "C1", BAD_DEBT, "7f0c6a2e-0d1b-4c52-9a55-3c9f1e1b2d40")

    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json()
    assert _count(app, write_off_requests) == 1


def test_action_same_key_with_another_request_answers_422_and_records_nothing(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up"), patient_account("C2")])
    assert _post(app, "C1", WORKED, "k").status_code == 201

    other_body = _post(app, "C1", {**WORKED, "outcome": "paid"}, "k")
    other_claim = _post(app, "C2", WORKED, "k")

    assert other_body.status_code == other_claim.status_code == 422
    assert "another request" in other_body.json()["detail"]
    assert _count(app, account_actions) == 1


def test_action_keys_are_each_users_own(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])

    mine = _post(app, "C1", WORKED, "same-key")
    theirs = _post(app, "C1", WORKED, "same-key", role="collector2")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["action_id"] != theirs.json()["action_id"]
    assert _count(app, account_actions) == 2


def test_action_refused_is_not_stored_so_a_retry_is_checked_again(app):
    stored_accounts(app.app, [payer_account("C1")])
    body = {**BAD_DEBT, "override_reason": "patient moved"}

    first = _post(app, "C1", body, "refused")
    retry = _post(app, "C1", body, "refused")

    assert first.status_code == retry.status_code == 409
    assert "Idempotent-Replayed" not in retry.headers
    assert _count(app, account_actions) == 0


def test_action_malformed_key_answers_422(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])
    assert _post(app, "C1", WORKED, "has space").status_code == 422
    assert _post(app, "C1", WORKED, "x" * 129).status_code == 422


def test_decision_retry_with_same_key_answers_the_same_and_decides_once(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _post(app, "C1", BAD_DEBT, "file-it").json()["write_off_request_id"]
    headers = {**app.headers("approver"), "Idempotency-Key": "approve-it"}
    body = {"decision": "approve", "note": "statements and screen checked"}

    first = app.client.post(f"/v1/approvals/{request_id}", json=body, headers=headers)
    retry = app.client.post(f"/v1/approvals/{request_id}", json=body, headers=headers)
    without_key = app.client.post(
        f"/v1/approvals/{request_id}", json=body, headers=app.headers("approver")
    )

    assert first.status_code == retry.status_code == 200
    assert retry.content == first.content and retry.headers["Idempotent-Replayed"] == "true"
    assert without_key.status_code == 409
    assert _count(app, account_actions) == 1
    assert _count(app, audit_records, audit_records.c.kind == "write_off_decision") == 1


def test_action_concurrent_retries_record_once(app):
    """Two deliveries of one request at the same moment: one records, the other gets its
    answer (or, if it lost the race at the very insert, a 409 to retry), never a second row."""
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])
    state = app.app.state
    principal = state.keys.authenticate(app.tokens["collector"])
    policy = load_policy(None)
    start = threading.Barrier(4)
    answers: list[object] = []

    def deliver() -> None:
        start.wait()
        try:
            answers.append(
                record_action(
                    ActionRequest(**WORKED),
                    "C1",
                    requester=principal,
                    approver=None,
                    policy=policy,
                    approval_above=state.settings.write_off_approval_above,
                    audit=state.audit,
                    today=TODAY,
                    render=lambda recorded: (201, recorded.action_id.encode()),
                    idempotency_key="at-once",
                )
            )
        except Exception as error:  # noqa: BLE001 - collected and checked below
            answers.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    bodies = {a.body for a in answers if not isinstance(a, Exception)}
    errors = [a for a in answers if isinstance(a, Exception)]
    assert len(bodies) == 1 and all("retry" in str(e) for e in errors)
    assert _count(app, account_actions) == 1
    assert state.audit.verify().ok

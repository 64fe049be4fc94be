"""Approval as a step of its own: a write-off above the approval amount waits (202), approvers
list and decide it, only an approved request becomes a write-off, every step in the chain, the
approver never the requesting user; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from serving.audit.tables import audit_records
from serving.worklist.store import account_actions
from serving.worklist.writeoffs import build_report
from tests.factories import tx_row
from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import app_settings
from tests.serving.worklist.factories import (
    TODAY,
    _day,
    patient_account,
    send_history,
    stored_accounts,
    worklist_app,
)

BAD_DEBT = {"action": "write_off", "category": "bad_debt", "note": "no response to 4 statements"}
APPROVE = {"decision": "approve", "note": "checked the statements and the FAP screen"}


@pytest.fixture
def app(db_url, model_dirs, monkeypatch):
    yield from worklist_app(app_settings(db_url, str(model_dirs[0])), monkeypatch)


def _request(app, claim_id="C1", body=BAD_DEBT, role="collector") -> str:
    answer = app.client.post(
        f"/v1/accounts/{claim_id}/actions", json=body, headers=app.headers(role)
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["write_off_request_id"]


def _decide(app, request_id, body=APPROVE, role="approver"):
    return app.client.post(f"/v1/approvals/{request_id}", json=body, headers=app.headers(role))


def _kinds(app) -> list[str]:
    with app.app.state.audit.engine.connect() as connection:
        query = sa.select(audit_records.c.kind).order_by(audit_records.c.seq)
        return [kind for kind in connection.execute(query).scalars() if kind != "score"]


def _write_offs(app) -> list:
    with app.app.state.audit.engine.connect() as connection:
        return connection.execute(sa.select(account_actions)).all()


def test_approval_listed_then_approved_becomes_the_write_off_with_every_step_chained(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app)

    listed = app.client.get("/v1/approvals", headers=app.headers("approver")).json()
    approved = _decide(app, request_id)

    assert [item["write_off_request_id"] for item in listed["items"]] == [request_id]
    assert listed["items"][0]["requested_by"]["user"] == "test-collector"
    assert listed["items"][0]["still_open"] == "5000.00"
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["decided_by"]["user"] == "test-approver"
    assert body["decision_note"] == APPROVE["note"]
    assert _kinds(app) == ["write_off_request", "write_off_decision", "account_action"]
    audit = app.app.state.audit
    action = audit.get(body["action_id"])
    assert action.requester_user == "test-collector"
    assert action.payload["approver_user"] == "test-approver"
    assert action.payload["write_off_request_id"] == request_id
    (row,) = _write_offs(app)
    assert (row.amount_cents, row.approver_user, row.write_off_request_id) == (
        500_000,
        "test-approver",
        request_id,
    )
    assert audit.verify().ok
    pending = app.client.get("/v1/approvals", headers=app.headers("approver")).json()
    assert pending["items"] == []


def test_approval_rejected_with_note_records_the_decision_and_no_write_off(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app)

    rejected = _decide(app, request_id, {"decision": "reject", "note": "call the patient first"})

    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["action_id"] is None
    assert _write_offs(app) == []
    assert _kinds(app) == ["write_off_request", "write_off_decision"]
    decision = app.app.state.audit.get(request_id)  # the request's own record is unchanged
    assert decision.payload["status"] == "pending"
    listed = app.client.get(
        "/v1/approvals", params={"status": "rejected"}, headers=app.headers("approver")
    )
    assert [i["write_off_request_id"] for i in listed.json()["items"]] == [request_id]


def test_approval_by_the_requesting_user_refused_whatever_key_they_hold(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app, role="admin")
    second_key = app.app.state.keys.create(user="test-admin", label="second key")[1]

    answer = app.client.post(
        f"/v1/approvals/{request_id}",
        json=APPROVE,
        headers={"Authorization": f"Bearer {second_key}"},
    )

    assert answer.status_code == 403
    assert "another user" in answer.json()["detail"]
    assert _write_offs(app) == []
    assert _decide(app, request_id, role="approver2").status_code == 200


def test_approval_collector_may_read_but_not_list_or_decide(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app)
    collector = app.headers("collector")

    read = app.client.get(f"/v1/approvals/{request_id}", headers=collector)

    assert read.status_code == 200 and read.json()["status"] == "pending"
    assert app.client.get("/v1/approvals", headers=collector).status_code == 403
    assert _decide(app, request_id, role="collector").status_code == 403
    assert app.client.get("/v1/approvals").status_code == 401


def test_approval_decided_twice_answers_409(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app)
    assert _decide(app, request_id).status_code == 200

    again = _decide(app, request_id, {"decision": "reject", "note": "changed my mind"})

    assert again.status_code == 409 and "approved already" in again.json()["detail"]
    assert len(_write_offs(app)) == 1


def test_approval_after_a_dispute_arrived_refused_on_todays_facts_and_stays_pending(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app)
    dispute = tx_row("C1", _day(0), "dispute_open")
    send_history(app.app, [patient_account("C1", balance="5000.00", extra=(dispute,))])

    answer = _decide(app, request_id)

    assert answer.status_code == 409, answer.text
    assert answer.json()["rule_id"] == "HOLD-DISPUTE"
    assert _write_offs(app) == []
    read = app.client.get(f"/v1/approvals/{request_id}", headers=app.headers("approver"))
    assert read.json()["status"] == "pending"
    assert _decide(app, request_id, {"decision": "reject", "note": "disputed"}).status_code == 200


def test_approval_of_more_than_is_still_open_refused(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    first, second = _request(app), _request(app)  # each for the whole balance
    assert _decide(app, first).status_code == 200

    answer = _decide(app, second)

    assert answer.status_code == 409 and "$0.00 is still open" in answer.json()["detail"]
    assert len(_write_offs(app)) == 1


def test_approval_unknown_or_malformed_id_and_missing_note(app):
    assert _decide(app, "0" * 32).status_code == 404
    assert _decide(app, "not-an-id").status_code == 422
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app)
    assert _decide(app, request_id, {"decision": "approve", "note": " "}).status_code == 422
    assert _decide(app, request_id, {"decision": "maybe", "note": "x"}).status_code == 422


def test_approval_list_pages_oldest_first(app):
    accounts = [patient_account(f"C{i}", balance="5000.00") for i in range(3)]
    stored_accounts(app.app, accounts)
    ids = [_request(app, f"C{i}") for i in range(3)]
    headers = app.headers("approver")

    first = app.client.get("/v1/approvals", params={"limit": 2}, headers=headers).json()
    rest = app.client.get(
        "/v1/approvals", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
    ).json()

    assert [i["write_off_request_id"] for i in first["items"] + rest["items"]] == ids
    assert rest["next_cursor"] is None


def test_approved_write_off_is_in_the_month_report_with_both_users(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    request_id = _request(app)
    _decide(app, request_id)

    (line,) = build_report(app.app.state.history.engine, TODAY.strftime("%Y-%m")).lines

    assert (line.requested_by, line.approver_user) == ("test-collector", "test-approver")
    assert line.write_off_request_id == request_id and str(line.amount) == "5000.00"


def _documented(app, path: str, method: str, status: int) -> dict:
    """The JSON schema the OpenAPI document gives for a response, its components alongside."""
    document = app.app.openapi()
    response = document["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


def test_approval_routes_answer_what_the_openapi_document_says(app):
    from jsonschema import Draft202012Validator

    stored_accounts(app.app, [patient_account("C1", balance="5000.00"), patient_account("C2")])
    actions, one = "/v1/accounts/{claim_id}/actions", "/v1/approvals/{request_id}"
    headers = app.headers("collector")
    filed = app.client.post("/v1/accounts/C1/actions", json=BAD_DEBT, headers=headers)
    small = {**BAD_DEBT, "amount": "12.5"}
    recorded = app.client.post("/v1/accounts/C2/actions", json=small, headers=headers)
    missing = app.client.post("/v1/accounts/C2/actions", json={"action": "worked"}, headers=headers)
    request_id = filed.json()["write_off_request_id"]
    listed = app.client.get("/v1/approvals", headers=app.headers("approver"))
    decided = _decide(app, request_id)
    again = _decide(app, request_id)
    unknown = _decide(app, "0" * 32)
    answers = [
        (filed, actions, "post", 202),
        (recorded, actions, "post", 201),
        (missing, actions, "post", 422),
        (listed, "/v1/approvals", "get", 200),
        (decided, one, "post", 200),
        (again, one, "post", 409),
        (unknown, one, "post", 404),
    ]
    for answer, path, method, status in answers:
        assert answer.status_code == status, (path, answer.text)
        schema = _documented(app, path, method, status)
        errors = list(Draft202012Validator(schema).iter_errors(answer.json()))
        assert errors == [], (path, status, [e.message for e in errors])

"""POST /v1/accounts/{claim_id}/actions: policy refusals with the rule named, the approver
requirement, overrides need a reason, every action chained to the score it acted on; on SQLite
and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import app_settings
from tests.serving.worklist.factories import account_row, fresh_rows, payer_facts, worklist_app

BAD_DEBT = {"action": "write_off", "category": "bad_debt", "note": "no response to 4 statements"}


@pytest.fixture
def app(db_url, model_dirs, monkeypatch):
    yield from worklist_app(app_settings(db_url, str(model_dirs[0])), monkeypatch)


def _post(app, claim_id, body, role="collector", approver=None):
    headers = app.headers(role)
    if approver is not None:
        headers["X-Approver-Key"] = app.tokens[approver]
    return app.client.post(f"/v1/accounts/{claim_id}/actions", json=body, headers=headers)


def test_action_worked_records_audit_linked_to_score_and_chain_verifies(app):
    fresh_rows(app.app, [account_row("C1", action="follow_up")])
    answer = _post(app, "C1", {"action": "worked", "outcome": "promise_to_pay"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    record = app.app.state.audit.get(body["action_id"])
    assert record.kind == "account_action" and record.claim_id == "C1"
    assert record.payload["score_id"] == "score-C1" == body["score_id"]
    assert app.app.state.audit.get(record.payload["score_id"]).kind == "score"
    assert record.payload["outcome"] == "promise_to_pay"
    assert body["override"] is False
    assert app.app.state.audit.verify().ok


def test_action_worked_without_outcome_answers_422(app):
    fresh_rows(app.app, [account_row("C1", action="follow_up")])
    answer = _post(app, "C1", {"action": "worked"})
    assert answer.status_code == 422
    assert "outcome" in answer.json()["detail"]


def test_action_bad_debt_on_payer_balance_refused_409_naming_rule(app):
    fresh_rows(app.app, [account_row("C1", action="follow_up", facts=payer_facts())])
    answer = _post(app, "C1", {**BAD_DEBT, "override_reason": "patient moved"})
    assert answer.status_code == 409
    assert answer.json()["rule_id"] == "PAYER-1"
    assert "still with the payer" in answer.json()["reason"]


def test_action_write_off_during_dispute_refused_naming_hold_rule(app):
    fresh_rows(app.app, [account_row("C1", action="hold", facts={"dispute_open": True})])
    for body in (
        {**BAD_DEBT, "override_reason": "x"},
        {"action": "write_off", "category": "administrative", "note": "x", "override_reason": "x"},
    ):
        answer = _post(app, "C1", body, approver="approver")
        assert answer.status_code == 409, answer.text
        assert answer.json()["rule_id"] == "HOLD-DISPUTE"


def test_action_refused_write_off_leaves_no_audit_record(app):
    fresh_rows(app.app, [account_row("C1", action="follow_up", facts=payer_facts())])
    before = app.app.state.audit.verify().n_records
    _post(app, "C1", {**BAD_DEBT, "override_reason": "x"})
    assert app.app.state.audit.verify().n_records == before


def test_action_write_off_above_threshold_without_approver_answers_403(app):
    fresh_rows(app.app, [account_row("C1", facts={"open_balance": 5000.0})])
    answer = _post(app, "C1", BAD_DEBT)
    assert answer.status_code == 403
    assert "approver" in answer.json()["detail"]


def test_action_write_off_approved_by_collector_or_self_answers_403(app):
    fresh_rows(app.app, [account_row("C1", facts={"open_balance": 5000.0})])
    assert _post(app, "C1", BAD_DEBT, approver="collector2").status_code == 403
    own = _post(app, "C1", BAD_DEBT, role="admin", approver="admin")
    assert own.status_code == 403
    assert "second user" in own.json()["detail"]


def test_action_write_off_with_approver_records_approver_in_chain(app):
    fresh_rows(app.app, [account_row("C1", facts={"open_balance": 5000.0})])
    answer = _post(app, "C1", BAD_DEBT, approver="approver")
    assert answer.status_code == 201, answer.text
    record = app.app.state.audit.get(answer.json()["action_id"])
    assert record.payload["approver_role"] == "approver"
    assert record.payload["approver_key_id"] == answer.json()["approver_key_id"] is not None
    assert record.payload["amount"] == "5000.00"


def test_action_write_off_below_threshold_needs_no_approver(app):
    fresh_rows(app.app, [account_row("C1")])
    answer = _post(app, "C1", {**BAD_DEBT, "amount": "125.50"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["amount"] == "125.50"
    assert answer.json()["approver_key_id"] is None


def test_action_administrative_write_off_always_needs_approver(app):
    fresh_rows(app.app, [account_row("C1")])
    body = {
        "action": "write_off",
        "category": "administrative",
        "note": "duplicate account",
        "override_reason": "duplicate of another claim",
        "amount": "10.00",
    }
    assert _post(app, "C1", body).status_code == 403
    assert _post(app, "C1", body, approver="approver").status_code == 201


def test_action_override_without_reason_answers_422_with_reason_records(app):
    fresh_rows(app.app, [account_row("C1", action="bad_debt_write_off")])
    refused = _post(app, "C1", {"action": "worked", "outcome": "no_contact"})
    assert refused.status_code == 422
    assert "override_reason" in refused.json()["detail"]
    body = {"action": "worked", "outcome": "no_contact", "override_reason": "patient called in"}
    recorded = _post(app, "C1", body)
    assert recorded.status_code == 201
    assert recorded.json()["override"] is True
    record = app.app.state.audit.get(recorded.json()["action_id"])
    assert record.payload["override_reason"] == "patient called in"


def test_action_denial_write_off_without_carc_answers_422(app):
    fresh_rows(app.app, [account_row("C1", action="denial_write_off")])
    answer = _post(app, "C1", {"action": "write_off", "category": "denial", "note": "CO-29"})
    assert answer.status_code == 422
    assert "carc_code" in answer.json()["detail"]


def test_action_write_off_above_open_balance_answers_422(app):
    fresh_rows(app.app, [account_row("C1")])
    answer = _post(app, "C1", {**BAD_DEBT, "amount": "800.01"})
    assert answer.status_code == 422


def test_action_unknown_claim_answers_404(app):
    fresh_rows(app.app, [account_row("C1")])
    assert _post(app, "NOPE", {"action": "worked", "outcome": "paid"}).status_code == 404


def test_action_scorer_role_answers_403(app):
    fresh_rows(app.app, [account_row("C1", action="follow_up")])
    answer = _post(app, "C1", {"action": "worked", "outcome": "paid"}, role="scorer")
    assert answer.status_code == 403


def test_action_worked_account_leaves_worklist_for_cool_off(app):
    fresh_rows(app.app, [account_row("C1", 900, action="follow_up"), account_row("C2", 100)])
    headers = app.headers("collector")
    before = [
        i["claim_id"] for i in app.client.get("/v1/worklist", headers=headers).json()["items"]
    ]
    _post(app, "C1", {"action": "worked", "outcome": "left_message"})
    after = [i["claim_id"] for i in app.client.get("/v1/worklist", headers=headers).json()["items"]]
    assert (before, after) == (["C1", "C2"], ["C2"])


def test_action_names_unknown_score_id_answers_422(app):
    fresh_rows(app.app, [account_row("C1", action="follow_up"), account_row("C2")])
    body = {"action": "worked", "outcome": "paid", "score_id": "score-C2"}
    answer = _post(app, "C1", body)
    assert answer.status_code == 422
    assert "score_id" in answer.json()["detail"]

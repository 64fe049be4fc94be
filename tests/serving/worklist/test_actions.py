"""POST /v1/accounts/{claim_id}/actions: policy refusals with the rule named, on today's facts;
approvers, overrides need a reason, every action chained to the score it acted on; on SQLite
and PostgreSQL. Accounts are stored as history, their worklist rows made from it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from serving.audit.tables import audit_records
from serving.worklist.store import account_actions
from tests.factories import tx_row
from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import app_settings
from tests.serving.worklist.factories import (
    _day,
    patient_account,
    payer_account,
    send_history,
    stored_accounts,
    worklist_app,
)

BAD_DEBT = {"action": "write_off", "category": "bad_debt", "note": "no response to 4 statements"}


@pytest.fixture
def app(db_url, model_dirs, monkeypatch):
    yield from worklist_app(app_settings(db_url, str(model_dirs[0])), monkeypatch)


def _post(app, claim_id, body, role="collector", approver=None, key=None):
    headers = app.headers(role)
    if approver is not None:
        headers["X-Approver-Key"] = app.tokens[approver]
    if key is not None:
        headers["Idempotency-Key"] = key
    return app.client.post(f"/v1/accounts/{claim_id}/actions", json=body, headers=headers)


def _kinds(app) -> list[str]:
    with app.app.state.audit.engine.connect() as connection:
        return list(
            connection.execute(sa.select(audit_records.c.kind).order_by(audit_records.c.seq))
            .scalars()
            .all()
        )


def _action_rows(app) -> int:
    with app.app.state.audit.engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(account_actions)).scalar()


def test_action_worked_records_audit_linked_to_score_and_chain_verifies(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])
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


def test_action_record_names_the_collectors_user_and_key(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])
    answer = _post(app, "C1", {"action": "worked", "outcome": "paid"})
    record = app.app.state.audit.get(answer.json()["action_id"])
    assert record.requester_user == "test-collector"
    assert record.requester_key_id is not None and record.requester_system is None
    assert app.app.state.audit.verify().ok


def test_action_worked_without_outcome_answers_422(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])
    answer = _post(app, "C1", {"action": "worked"})
    assert answer.status_code == 422
    assert "outcome" in answer.json()["detail"]


def test_action_bad_debt_on_payer_balance_refused_409_naming_rule(app):
    stored_accounts(app.app, [payer_account("C1")])
    answer = _post(app, "C1", {**BAD_DEBT, "override_reason": "patient moved"})
    assert answer.status_code == 409
    assert answer.json()["rule_id"] == "PAYER-1"
    assert "still with the payer" in answer.json()["reason"]


def test_action_write_off_during_dispute_refused_naming_hold_rule(app):
    dispute = tx_row("C1", _day(5), "dispute_open")
    stored_accounts(app.app, [patient_account("C1", action="hold", extra=(dispute,))])
    for body in (
        {**BAD_DEBT, "override_reason": "x"},
        {"action": "write_off", "category": "administrative", "note": "x", "override_reason": "x"},
    ):
        answer = _post(app, "C1", body, approver="approver")
        assert answer.status_code == 409, answer.text
        assert answer.json()["rule_id"] == "HOLD-DISPUTE"


@pytest.mark.parametrize(
    ("event", "rule_id"),
    [("dispute_open", "HOLD-DISPUTE"), ("fap_application", "HOLD-FAP")],
)
def test_action_write_off_after_history_sent_since_rescore_refused_on_current_facts(
    app, event, rule_id
):
    """The worklist was scored before the dispute (or the FAP application) arrived through the
    history: the write-off is checked on today's facts, not the rescore's."""
    stored_accounts(app.app, [patient_account("C1")])
    send_history(app.app, [patient_account("C1", extra=(tx_row("C1", _day(1), event),))])

    answer = _post(app, "C1", BAD_DEBT)

    assert answer.status_code == 409, answer.text
    assert answer.json()["rule_id"] == rule_id
    assert "account_action" not in _kinds(app)


def test_action_write_off_after_payment_since_rescore_counts_todays_balance(app):
    stored_accounts(app.app, [patient_account("C1")])
    payment = tx_row("C1", _day(1), "payment", "300.00", party="patient")
    send_history(app.app, [patient_account("C1", extra=(payment,))])

    too_much = _post(app, "C1", {**BAD_DEBT, "amount": "800.00"})
    everything = _post(app, "C1", BAD_DEBT)

    assert too_much.status_code == 422 and "$500.00 still open" in too_much.json()["detail"]
    assert everything.status_code == 201, everything.text
    assert everything.json()["amount"] == "500.00"
    record = app.app.state.audit.get(everything.json()["action_id"])
    assert record.payload["facts"]["open_balance"] == 500.0
    assert record.payload["facts_as_of"] == "2026-10-15"


def test_action_on_account_closed_since_rescore_answers_404(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])
    paid = tx_row("C1", _day(1), "payment", "800.00", party="patient")
    send_history(app.app, [patient_account("C1", extra=(paid,))])

    answer = _post(app, "C1", {"action": "worked", "outcome": "paid"})

    assert answer.status_code == 404
    assert "as of 2026-10-15" in answer.json()["detail"]


def test_action_refused_write_off_leaves_no_audit_record(app):
    stored_accounts(app.app, [payer_account("C1")])
    before = app.app.state.audit.verify().n_records
    _post(app, "C1", {**BAD_DEBT, "override_reason": "x"})
    assert app.app.state.audit.verify().n_records == before


def test_action_write_off_above_threshold_without_approver_is_pending_202(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    answer = _post(app, "C1", BAD_DEBT)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "pending" and body["amount"] == "5000.00"
    assert body["requested_by"]["user"] == "test-collector"
    record = app.app.state.audit.get(body["write_off_request_id"])
    assert record.kind == "write_off_request" and record.requester_user == "test-collector"
    assert _action_rows(app) == 0  # only an approved request becomes a write-off


def test_action_write_off_approved_by_collector_or_self_answers_403(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    assert _post(app, "C1", BAD_DEBT, approver="collector2").status_code == 403
    own = _post(app, "C1", BAD_DEBT, role="admin", approver="admin")
    assert own.status_code == 403
    assert "another user" in own.json()["detail"]


def test_action_approver_is_never_the_requesting_user_whatever_keys_they_hold(app):
    """One admin user with two keys: the second key does not make a second person."""
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    second_key = app.app.state.keys.create(user="test-admin", label="admin's second key")[1]
    headers = {**app.headers("admin"), "X-Approver-Key": second_key}

    answer = app.client.post("/v1/accounts/C1/actions", json=BAD_DEBT, headers=headers)

    assert answer.status_code == 403, answer.text
    assert "'test-admin' holds both keys" in answer.json()["detail"]
    assert _action_rows(app) == 0


def test_action_approver_key_of_a_system_or_of_no_one_answers_403(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    keys = app.app.state.keys
    for token in (keys.create("approver", system="rcm-bot")[1], keys.create("approver")[1]):
        headers = {**app.headers("collector"), "X-Approver-Key": token}
        answer = app.client.post("/v1/accounts/C1/actions", json=BAD_DEBT, headers=headers)
        assert answer.status_code == 403, answer.text
        assert "issued to a user" in answer.json()["detail"]


def test_action_write_off_with_approver_records_approver_in_chain(app):
    stored_accounts(app.app, [patient_account("C1", balance="5000.00")])
    answer = _post(app, "C1", BAD_DEBT, approver="approver")
    assert answer.status_code == 201, answer.text
    record = app.app.state.audit.get(answer.json()["action_id"])
    assert record.payload["approver_role"] == "approver"
    assert record.payload["approver_key_id"] == answer.json()["approver_key_id"] is not None
    assert record.payload["approver_user"] == "test-approver" == answer.json()["approver_user"]
    assert record.payload["amount"] == "5000.00"


def test_action_write_off_below_threshold_needs_no_approver(app):
    stored_accounts(app.app, [patient_account("C1")])
    answer = _post(app, "C1", {**BAD_DEBT, "amount": "125.50"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["amount"] == "125.50"
    assert answer.json()["approver_key_id"] is None


def test_action_write_off_amount_is_answered_and_recorded_in_whole_cents(app):
    stored_accounts(app.app, [patient_account("C1")])
    answer = _post(app, "C1", {**BAD_DEBT, "amount": "125.5"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["amount"] == "125.50"
    assert app.app.state.audit.get(answer.json()["action_id"]).payload["amount"] == "125.50"


def test_action_write_offs_above_threshold_in_total_need_approval(app):
    """Five $999 write-offs on one account are $4,995: from the second on, the account's total
    is above the $1,000 approval amount."""
    stored_accounts(app.app, [patient_account("C1", balance="4995.00")])
    statuses = [_post(app, "C1", {**BAD_DEBT, "amount": "999.00"}).status_code for _ in range(5)]
    assert statuses == [201, 202, 202, 202, 202]
    approved = _post(app, "C1", {**BAD_DEBT, "amount": "999.00"}, approver="approver")
    assert approved.status_code == 201


def test_action_write_off_above_what_is_still_open_counting_earlier_ones_answers_422(app):
    stored_accounts(app.app, [patient_account("C1")])
    assert _post(app, "C1", {**BAD_DEBT, "amount": "500.00"}).status_code == 201
    answer = _post(app, "C1", {**BAD_DEBT, "amount": "400.00"})
    assert answer.status_code == 422
    assert "$300.00 still open" in answer.json()["detail"]
    rest = _post(app, "C1", BAD_DEBT)  # default: what is still open
    assert rest.status_code == 201 and rest.json()["amount"] == "300.00"


def test_action_write_off_posted_by_the_rcm_is_not_counted_twice(app):
    stored_accounts(app.app, [patient_account("C1")])
    assert _post(app, "C1", {**BAD_DEBT, "amount": "500.00"}).status_code == 201
    posted = tx_row("C1", _day(0), "adjustment", "500.00", reason="bad_debt")
    send_history(app.app, [patient_account("C1", extra=(posted,))])
    answer = _post(app, "C1", {**BAD_DEBT, "amount": "300.01"})
    assert answer.status_code == 422 and "$300.00 still open" in answer.json()["detail"]
    assert _post(app, "C1", {**BAD_DEBT, "amount": "300.00"}).status_code == 201


def test_action_administrative_write_off_always_needs_approver(app):
    stored_accounts(app.app, [patient_account("C1")])
    body = {
        "action": "write_off",
        "category": "administrative",
        "note": "duplicate account",
        "override_reason": "duplicate of another claim",
        "amount": "10.00",
    }
    assert _post(app, "C1", body).status_code == 202
    assert _post(app, "C1", body, approver="approver").status_code == 201


def test_action_override_without_reason_answers_422_with_reason_records(app):
    stored_accounts(app.app, [patient_account("C1", action="bad_debt_write_off")])
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
    stored_accounts(app.app, [payer_account("C1", denial="CO-29", action="denial_write_off")])
    answer = _post(app, "C1", {"action": "write_off", "category": "denial", "note": "CO-29"})
    assert answer.status_code == 422
    assert "carc_code" in answer.json()["detail"]


def test_action_write_off_above_open_balance_answers_422(app):
    stored_accounts(app.app, [patient_account("C1")])
    answer = _post(app, "C1", {**BAD_DEBT, "amount": "800.01"})
    assert answer.status_code == 422


def test_action_unknown_claim_answers_404(app):
    stored_accounts(app.app, [patient_account("C1")])
    assert _post(app, "C1X", {"action": "worked", "outcome": "paid"}).status_code == 404


def test_action_scorer_role_answers_403(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up")])
    answer = _post(app, "C1", {"action": "worked", "outcome": "paid"}, role="scorer")
    assert answer.status_code == 403


def test_action_worked_account_leaves_worklist_for_cool_off(app):
    stored_accounts(
        app.app,
        [
            patient_account("C1", action="follow_up", priority_cents=900),
            patient_account("C2", priority_cents=100),
        ],
    )
    headers = app.headers("collector")
    before = [
        i["claim_id"] for i in app.client.get("/v1/worklist", headers=headers).json()["items"]
    ]
    _post(app, "C1", {"action": "worked", "outcome": "left_message"})
    after = [i["claim_id"] for i in app.client.get("/v1/worklist", headers=headers).json()["items"]]
    assert (before, after) == (["C1", "C2"], ["C2"])


def test_action_pending_write_off_leaves_worklist_until_decided(app):
    stored_accounts(
        app.app,
        [
            patient_account("C1", balance="5000.00", priority_cents=900),
            patient_account("C2", priority_cents=100),
        ],
    )
    assert _post(app, "C1", BAD_DEBT).status_code == 202
    items = app.client.get("/v1/worklist", headers=app.headers("collector")).json()["items"]
    assert [i["claim_id"] for i in items] == ["C2"]


def test_action_names_unknown_score_id_answers_422(app):
    stored_accounts(app.app, [patient_account("C1", action="follow_up"), patient_account("C2")])
    body = {"action": "worked", "outcome": "paid", "score_id": "score-C2"}
    answer = _post(app, "C1", body)
    assert answer.status_code == 422
    assert "score_id" in answer.json()["detail"]

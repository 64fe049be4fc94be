"""POST /v1/history: validated like files, stored idempotently, used by later scores."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    history_body,
    model_dirs,
    open_claim_ids,
    raw_history,
    running_app,
    score_item,
    sqlite_app,
    tiny_models,
)


def post_history(app, body, role="scorer"):
    return app.client.post("/v1/history", json=body, headers=app.headers(role))


def test_history_same_send_twice_stored_once(running_app, raw_history):
    body = history_body(raw_history, open_claim_ids(raw_history)[:20])
    first = post_history(running_app, body)
    again = post_history(running_app, body)
    assert first.status_code == again.status_code == 200
    n_claims, n_transactions = len(body["claims"]), len(body["transactions"])
    assert first.json() == {
        "claims_new": n_claims,
        "claims_updated": 0,
        "transactions_new": n_transactions,
        "transactions_duplicate": 0,
    }
    assert again.json() == {
        "claims_new": 0,
        "claims_updated": 0,
        "transactions_new": 0,
        "transactions_duplicate": n_transactions,
    }


def test_history_invalid_rows_422_name_table_column_and_rows(sqlite_app, raw_history):
    body = history_body(raw_history, open_claim_ids(raw_history)[:3])
    body["claims"][1]["billed_date"] = "2025/01/05"
    body["transactions"][0]["type"] = "gift"
    body["transactions"][2]["amount"] = "-3"
    response = post_history(sqlite_app, body)
    assert response.status_code == 422
    problems = {(p["source"], p["column"], tuple(p["rows"])) for p in response.json()["problems"]}
    assert problems == {
        ("claims", "billed_date", (2,)),
        ("transactions", "type", (1,)),
        ("transactions", "amount", (3,)),
    }
    assert "nothing was written" in response.json()["detail"]
    assert post_history(sqlite_app, {"claims": [], "transactions": []}).json()["claims_new"] == 0


def test_history_transaction_of_a_stored_claim_accepted_unknown_claim_422(sqlite_app, raw_history):
    claim_id = open_claim_ids(raw_history)[0]
    body = history_body(raw_history, [claim_id])
    assert post_history(sqlite_app, {"claims": body["claims"]}).status_code == 200
    later = {"transactions": body["transactions"]}
    assert post_history(sqlite_app, later).json()["transactions_new"] == len(body["transactions"])
    unknown = {"transactions": [{**body["transactions"][0], "claim_id": "C-NOWHERE"}]}
    response = post_history(sqlite_app, unknown)
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert (problem["source"], problem["column"], problem["rows"]) == (
        "transactions",
        "claim_id",
        [1],
    )


def test_history_unknown_column_422(sqlite_app, raw_history):
    body = history_body(raw_history, open_claim_ids(raw_history)[:1])
    body["claims"][0]["diagnosis"] = "J45"
    response = post_history(sqlite_app, body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "claims", 0, "diagnosis"]


def test_history_auditor_403_no_key_401(sqlite_app, raw_history):
    body = history_body(raw_history, open_claim_ids(raw_history)[:1])
    assert post_history(sqlite_app, body, role="auditor").status_code == 403
    assert sqlite_app.client.post("/v1/history", json=body).status_code == 401


def test_history_other_claims_of_the_patient_change_the_score(sqlite_app, raw_history):
    """A score uses the patient's other claims from the history sent earlier."""
    claims = raw_history.claims
    counts = claims.groupby("patient_id")["claim_id"].transform("count")
    open_ids = set(open_claim_ids(raw_history))
    candidates = claims[(counts >= 3) & claims["claim_id"].isin(open_ids)]
    claim_id = candidates["claim_id"].iloc[0]
    item = score_item(raw_history, claim_id)
    app = sqlite_app
    before = app.client.post("/v1/scores", json={"items": [item]}, headers=app.headers()).json()
    assert post_history(app, history_body(raw_history)).status_code == 200
    after = app.client.post("/v1/scores", json={"items": [item]}, headers=app.headers()).json()
    audit = app.app.state.audit
    seen_before = audit.get(before["scores"][0]["score_id"]).payload["features"]
    seen_after = audit.get(after["scores"][0]["score_id"]).payload["features"]
    assert seen_before["patient_prior_claims"] == 0
    assert seen_after["patient_prior_claims"] >= 1

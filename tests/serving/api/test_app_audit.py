"""GET /v1/audit/{score_id}: auditors read what was scored, and the read is recorded too."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    model_dirs,
    open_claim_ids,
    raw_history,
    running_app,
    score_item,
    sqlite_app,
    tiny_models,
)


def _score(app, raw_history):
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    response = app.client.post("/v1/scores", json={"items": [item]}, headers=app.headers())
    return response.json()["scores"][0]


def test_audit_auditor_reads_the_record_of_a_score(running_app, raw_history):
    app = running_app
    score = _score(app, raw_history)
    response = app.client.get(f"/v1/audit/{score['score_id']}", headers=app.headers("auditor"))
    assert response.status_code == 200
    record = response.json()
    assert (record["score_id"], record["kind"], record["claim_id"]) == (
        score["score_id"],
        "score",
        score["claim_id"],
    )
    assert record["requester_role"] == "scorer" and record["requester_key_id"]
    assert (
        record["model_version"] == score["model"]["version"] and len(record["model_sha256"]) == 64
    )
    payload = record["payload"]
    assert payload["probability_collected"] == score["probability_collected"]
    assert payload["expected_recovery"] == f"{score['expected_recovery']:.2f}"
    assert payload["reasons"] == score["reasons"]
    assert payload["as_of"] == score["as_of"] and payload["patient_key"].startswith("pk_")
    assert len(record["record_hash"]) == 64 and len(record["prev_hash"]) == 64


def test_audit_read_is_itself_recorded(sqlite_app, raw_history):
    app = sqlite_app
    score = _score(app, raw_history)
    app.client.get(f"/v1/audit/{score['score_id']}", headers=app.headers("auditor"))
    audit = app.app.state.audit
    report = audit.verify()
    assert report.ok and report.n_records == 2
    with audit.engine.connect() as connection:
        kinds = [
            r[0] for r in connection.exec_driver_sql("SELECT kind FROM audit_records ORDER BY seq")
        ]
    assert kinds == ["score", "audit_read"]


def test_audit_scorer_403_admin_200(sqlite_app, raw_history):
    app = sqlite_app
    score_id = _score(app, raw_history)["score_id"]
    assert app.client.get(f"/v1/audit/{score_id}", headers=app.headers("scorer")).status_code == 403
    assert (
        app.client.get(f"/v1/audit/{score_id}", headers=app.headers("collector")).status_code == 403
    )
    assert app.client.get(f"/v1/audit/{score_id}", headers=app.headers("admin")).status_code == 200
    assert app.client.get(f"/v1/audit/{score_id}").status_code == 401


def test_audit_unknown_score_id_404(sqlite_app):
    response = sqlite_app.client.get("/v1/audit/deadbeef", headers=sqlite_app.headers("auditor"))
    assert response.status_code == 404

"""POST /v1/scores through the app's lifespan, on SQLite and PostgreSQL."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
import sqlalchemy as sa

from features.snapshots import build_snapshots
from serving.api.deps import today
from serving.api.json_logs import JsonFormatter
from serving.api.schemas import ScoreResponse
from serving.api.score_request_msgspec import decode_score_request
from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    AS_OF,
    app_settings,
    history_body,
    model_dirs,
    open_claim_ids,
    raw_history,
    running_app,
    score_item,
    sqlite_app,
    start_app,
    tiny_models,
)

SECRET_PATIENT = "PATIENT-SECRET-4417"


def post_scores(app, items, role="scorer", **options):
    return app.client.post(
        "/v1/scores", json={"items": items, **options}, headers=app.headers(role)
    )


def audit_count(app, kind="score") -> int:
    engine = app.app.state.audit.engine
    with engine.connect() as connection:
        query = sa.text("SELECT count(*) FROM audit_records WHERE kind = :kind")
        return connection.execute(query, {"kind": kind}).scalar_one()


def test_scores_synthetic_claims_match_offline_model(running_app, raw_history, tiny_models):
    app = running_app
    assert (
        app.client.post(
            "/v1/history", json=history_body(raw_history), headers=app.headers()
        ).status_code
        == 200
    )
    ids = open_claim_ids(raw_history)[:25]
    response = post_scores(app, [score_item(raw_history, claim_id) for claim_id in ids])
    assert response.status_code == 200, response.text
    snapshots = build_snapshots(raw_history.validated(), [AS_OF], labels=None, claim_ids=ids)
    offline = tiny_models[0].score(snapshots).set_index("claim_id")
    scores = response.json()["scores"]
    assert [s["claim_id"] for s in scores] == ids
    for score in scores:
        expected = offline.loc[score["claim_id"]]
        assert score["probability_collected"] == pytest.approx(
            expected["probability_collected"], rel=1e-12
        )
        assert score["expected_recovery"] == pytest.approx(expected["expected_recovery"], abs=0.005)
        assert score["model"] == {"name": "arscore-test", "version": "local", "alias": None}
        assert score["as_of"] == AS_OF.date().isoformat()
        assert 1 <= len(score["reasons"]) <= 4
    assert audit_count(app) == len(ids)
    assert_is_a_score_response(response.content)


def assert_is_a_score_response(content: bytes) -> None:
    """The answer (written by orjson) is exactly what pydantic makes of it as a ScoreResponse:
    same keys at every level, no extras, the documented types."""
    parsed = json.loads(content)
    assert ScoreResponse.model_validate_json(content).model_dump(mode="json") == parsed


def test_scores_alike_whether_msgspec_or_the_schema_rules_read_the_body(sqlite_app, raw_history):
    """A canonical body is decoded by msgspec; padded text and money as strings need
    ScoreRequest's rules. Both give the same scores, reasons and recommendations."""
    items = [score_item(raw_history, c) for c in open_claim_ids(raw_history)[:20]]
    padded = [
        {**i, "payer_id": f" {i['payer_id']} ", "total_charge": str(i["total_charge"])}
        for i in items
    ]
    assert decode_score_request(json.dumps({"items": items}).encode()) is not None
    assert decode_score_request(json.dumps({"items": padded}).encode()) is None
    answers = []
    for body in (items, padded):
        response = post_scores(sqlite_app, body)
        assert response.status_code == 200, response.text
        answers.append([{**s, "score_id": None} for s in response.json()["scores"]])
    assert answers[0] == answers[1] and len(answers[0]) == 20


def test_scores_reasons_are_the_largest_recorded_contributions(
    sqlite_app, raw_history, tiny_models
):
    app = sqlite_app
    app.client.post("/v1/history", json=history_body(raw_history), headers=app.headers())
    ids = open_claim_ids(raw_history)[25:35]
    scores = post_scores(app, [score_item(raw_history, c) for c in ids]).json()["scores"]
    snapshots = build_snapshots(raw_history.validated(), [AS_OF], labels=None, claim_ids=ids)
    model = tiny_models[0]
    raw_scores = dict(
        zip(snapshots["claim_id"], model.raw_score(model.features(snapshots)), strict=True)
    )
    for score in scores:
        record = app.app.state.audit.get(score["score_id"])
        contributions = record.payload["contributions"]
        assert set(contributions) == {*model.pipeline.feature_names_, "bias"}
        assert sum(contributions.values()) == pytest.approx(raw_scores[score["claim_id"]], abs=1e-9)
        features = {k: v for k, v in contributions.items() if k != "bias"}
        largest = sorted(features, key=lambda f: -abs(features[f]))[:4]
        assert [r["feature"] for r in score["reasons"]] == [f for f in largest if features[f] != 0]
        for reason in score["reasons"]:
            assert reason["contribution"] == features[reason["feature"]]
            assert reason["direction"] == ("raises" if reason["contribution"] > 0 else "lowers")


def test_scores_without_reasons_have_none_and_audit_has_no_contributions(sqlite_app, raw_history):
    app = sqlite_app
    items = [score_item(raw_history, c) for c in open_claim_ids(raw_history)[:3]]
    response = post_scores(app, items, reasons=False)
    assert_is_a_score_response(response.content)
    scores = response.json()["scores"]
    assert all(s["reasons"] == [] for s in scores)
    record = app.app.state.audit.get(scores[0]["score_id"])
    assert "contributions" not in record.payload
    assert record.payload["features"] and record.payload["patient_key"].startswith("pk_")
    assert (record.requester_role, record.model_version) == ("scorer", "local")
    assert record.policy_version == app.app.state.policy_version
    assert "+cfg-" in record.policy_version


def test_scores_as_of_defaults_to_today_at_the_server(sqlite_app, raw_history):
    app = sqlite_app
    app.app.dependency_overrides[today] = lambda: dt.date(2025, 9, 30)
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    del item["as_of"]
    response = post_scores(app, [item])
    assert response.status_code == 200, response.text
    assert response.json()["scores"][0]["as_of"] == "2025-09-30"


def test_scores_request_as_of_applies_to_items_without_their_own(sqlite_app, raw_history):
    claim_id = open_claim_ids(raw_history)[0]
    item = score_item(raw_history, claim_id)
    del item["as_of"]
    response = post_scores(sqlite_app, [item], as_of="2025-09-30")
    assert response.json()["scores"][0]["as_of"] == "2025-09-30"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer ars_nokey_nosecret"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"X-API-Key": "not-a-token"}, 401),
    ],
)
def test_scores_missing_or_invalid_key_401(sqlite_app, raw_history, headers, status):
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    response = sqlite_app.client.post("/v1/scores", json={"items": [item]}, headers=headers)
    assert response.status_code == status
    assert response.headers["www-authenticate"] == "Bearer"


def test_scores_x_api_key_header_accepted(sqlite_app, raw_history):
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    headers = {"X-API-Key": sqlite_app.tokens["scorer"]}
    assert (
        sqlite_app.client.post("/v1/scores", json={"items": [item]}, headers=headers).status_code
        == 200
    )


def test_scores_two_different_keys_401(sqlite_app, raw_history):
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    headers = {**sqlite_app.headers("scorer"), "X-API-Key": sqlite_app.tokens["admin"]}
    assert (
        sqlite_app.client.post("/v1/scores", json={"items": [item]}, headers=headers).status_code
        == 401
    )


@pytest.mark.parametrize(("role", "status"), [("collector", 403), ("auditor", 403), ("admin", 200)])
def test_scores_role_decides_403_or_200(sqlite_app, raw_history, role, status):
    item = score_item(raw_history, open_claim_ids(raw_history)[0])
    assert post_scores(sqlite_app, [item], role=role).status_code == status


def test_scores_unauthenticated_invalid_body_401_before_422(sqlite_app):
    response = sqlite_app.client.post("/v1/scores", json={"items": [{"claim_id": 1}]})
    assert response.status_code == 401


def test_scores_more_items_than_limit_413_before_validation(sqlite_app, raw_history):
    items = [score_item(raw_history, open_claim_ids(raw_history)[0])] * 50 + [{"bad": "item"}]
    response = post_scores(sqlite_app, items)
    assert response.status_code == 413
    assert "at most 50" in response.json()["detail"]
    assert audit_count(sqlite_app) == 0


def test_scores_more_valid_items_than_limit_413(sqlite_app, raw_history):
    """A canonical body (read by msgspec) over the limit is refused like any other."""
    items = [score_item(raw_history, open_claim_ids(raw_history)[0])] * 51
    assert decode_score_request(json.dumps({"items": items}).encode()) is not None
    response = post_scores(sqlite_app, items)
    assert response.status_code == 413
    assert "51 items" in response.json()["detail"]
    assert audit_count(sqlite_app) == 0


def test_scores_body_larger_than_max_request_bytes_413(tmp_path, model_dirs, raw_history):
    settings = app_settings(
        f"sqlite:///{tmp_path}/a.db", str(model_dirs[0]), max_request_bytes=4096
    )
    for app in start_app(settings):
        items = [score_item(raw_history, c) for c in open_claim_ids(raw_history)[:10]]
        assert post_scores(app, items).status_code == 413


def test_scores_invalid_items_422_every_bad_field_without_echoing_input(sqlite_app, raw_history):
    good = score_item(raw_history, open_claim_ids(raw_history)[0])
    bad_date = {**good, "patient_id": SECRET_PATIENT, "service_date": "31/12/2024"}
    bad_money = {**good, "patient_id": SECRET_PATIENT, "total_charge": -5, "payer_type": "cash"}
    response = post_scores(sqlite_app, [good, bad_date, bad_money])
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {tuple(d["loc"]) for d in detail} == {
        ("body", "items", 1, "service_date"),
        ("body", "items", 2, "total_charge"),
        ("body", "items", 2, "payer_type"),
    }
    assert all(d["msg"] for d in detail)
    assert SECRET_PATIENT not in response.text and "input" not in detail[0]
    assert "Traceback" not in response.text


def test_scores_amount_without_exact_cents_422_not_500(sqlite_app, raw_history):
    """1e400 is a finite decimal but an infinite float: refused at its field, nothing scored."""
    good = score_item(raw_history, open_claim_ids(raw_history)[0])
    huge = {**good, "total_charge": "1e400"}
    huge["transactions"] = [{**t, "amount": "1e400"} for t in good["transactions"]]
    response = post_scores(sqlite_app, [huge])
    assert response.status_code == 422
    locs = {tuple(d["loc"]) for d in response.json()["detail"]}
    assert ("body", "items", 0, "total_charge") in locs
    assert ("body", "items", 0, "transactions", 0, "amount") in locs
    assert audit_count(sqlite_app) == 0


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'{"items": "C1"}'])
def test_scores_malformed_body_422_at_body_without_echo(sqlite_app, body):
    response = sqlite_app.client.post(
        "/v1/scores",
        content=body,
        headers={**sqlite_app.headers(), "content-type": "application/json"},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail and all(d["loc"][0] == "body" and d["msg"] for d in detail)
    assert "not json" not in response.text and audit_count(sqlite_app) == 0


def test_scores_request_body_documented_in_openapi(sqlite_app):
    document = sqlite_app.client.get("/openapi.json").json()
    body = document["paths"]["/v1/scores"]["post"]["requestBody"]
    reference = body["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    request = schemas[reference.rsplit("/", 1)[1]]
    assert body["required"] and {"items", "reasons", "as_of"} <= set(request["properties"])
    item = schemas[request["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert {"claim_id", "patient_id", "transactions"} <= set(item["properties"])


def test_scores_closed_balance_422_names_the_item(sqlite_app, raw_history):
    open_item = score_item(raw_history, open_claim_ids(raw_history)[0])
    future = {**open_item, "as_of": "2024-01-01"}
    response = post_scores(sqlite_app, [open_item, future])
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "items", 1]
    assert "billed on or before as_of 2024-01-01" in problem["msg"]
    assert audit_count(sqlite_app) == 0


def _refuse_audit_writes(engine, refuse: bool) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            statement = (
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_records "
                "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
                if refuse
                else "DROP TRIGGER refuse_audit"
            )
            connection.exec_driver_sql(statement)
        elif refuse:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_audit() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_records "
                "FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
            )
        else:
            connection.exec_driver_sql("DROP TRIGGER refuse_audit ON audit_records")


def test_scores_audit_store_refusing_writes_503_and_no_partial_record(running_app, raw_history):
    app = running_app
    items = [score_item(raw_history, c) for c in open_claim_ids(raw_history)[:3]]
    audit = app.app.state.audit
    _refuse_audit_writes(audit.engine, True)
    response = post_scores(app, items)
    assert response.status_code == 503
    assert "nothing was scored" in response.json()["detail"]
    assert "score_id" not in response.text and "probability" not in response.text
    assert audit_count(app) == 0
    _refuse_audit_writes(audit.engine, False)
    assert post_scores(app, items).status_code == 200
    assert audit_count(app) == 3
    assert audit.verify().ok


def _all_rows_text(engine) -> str:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return "\n".join(
            str(row)
            for table in metadata.sorted_tables
            for row in connection.execute(table.select())
        )


def test_scores_patient_id_in_no_log_line_response_or_database_row(sqlite_app, raw_history, caplog):
    app = sqlite_app
    caplog.set_level(logging.DEBUG)
    claim_id = open_claim_ids(raw_history)[0]
    body = history_body(raw_history, [claim_id])
    body["claims"][0]["patient_id"] = SECRET_PATIENT
    item = {**score_item(raw_history, claim_id), "patient_id": SECRET_PATIENT}
    responses = [
        app.client.post("/v1/history", json=body, headers=app.headers()),
        post_scores(app, [item]),
        post_scores(app, [{**item, "billed_date": "yesterday"}]),
        post_scores(app, [{**item, "as_of": "2020-01-01"}]),
        post_scores(app, [item] * 51),
        app.client.post("/v1/scores", json={"items": [item]}),
        app.client.post(
            "/v1/history",
            json={"claims": [{**body["claims"][0], "total_charge": "x"}]},
            headers=app.headers(),
        ),
    ]
    assert [r.status_code for r in responses] == [200, 200, 422, 422, 413, 401, 422]
    score_id = responses[1].json()["scores"][0]["score_id"]
    audit_read = app.client.get(f"/v1/audit/{score_id}", headers=app.headers("auditor"))
    assert audit_read.status_code == 200
    for response in [*responses, audit_read]:
        assert SECRET_PATIENT not in response.text
    formatter = JsonFormatter()
    assert caplog.records, "the app logged nothing: the check would be empty"
    for record in caplog.records:
        assert SECRET_PATIENT not in formatter.format(record)
        assert SECRET_PATIENT not in caplog.text
    assert SECRET_PATIENT not in _all_rows_text(app.app.state.audit.engine)


def test_scores_carry_the_policy_recommendation_and_audit_keeps_it(sqlite_app, raw_history):
    """Each score says what to do next, as the policy decides on the same snapshot."""
    import json

    from serving.policy.config import load_policy
    from serving.policy.recommend import recommend

    app = sqlite_app
    ids = open_claim_ids(raw_history)[:20]
    item = score_item(raw_history, ids[0])
    disputed = {
        **item,
        "transactions": [*item["transactions"], {"date": item["as_of"], "type": "dispute_open"}],
    }
    response = post_scores(app, [score_item(raw_history, c) for c in ids[1:]] + [disputed])
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    held = scores[-1]["recommendation"]
    assert held["action"] == "hold"
    assert any(r["rule_id"] == "HOLD-DISPUTE" for r in held["reasons"])
    policy = load_policy(None)
    snapshots = build_snapshots(raw_history.validated(), [AS_OF], labels=None, claim_ids=ids[1:])
    snapshots = snapshots.set_index("claim_id").loc[ids[1:]].reset_index()
    snapshots["probability_collected"] = [s["probability_collected"] for s in scores[:-1]]
    snapshots["expected_recovery"] = [s["expected_recovery"] for s in scores[:-1]]
    expected = [r.action for r in recommend(snapshots, policy)]
    assert [s["recommendation"]["action"] for s in scores[:-1]] == expected
    assert all(s["recommendation"]["policy_version"] == policy.version for s in scores)
    engine = app.app.state.audit.engine
    with engine.connect() as connection:
        query = sa.text("SELECT payload FROM audit_records WHERE score_id = :id")
        payload = connection.execute(query, {"id": scores[-1]["score_id"]}).scalar_one()
    assert json.loads(payload)["recommendation"]["action"] == "hold"

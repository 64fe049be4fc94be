"""Every record the API writes names the user (or the system) behind the key, beside the key:
scores, audit reads; on SQLite and PostgreSQL."""

# ruff: noqa: F811 (pytest fixtures imported from tests.serving.fixtures_app are parameters)

from __future__ import annotations

from serving.access.users import UserStore
from tests.serving.fixtures_app import (  # noqa: F401 (fixtures)
    model_dirs,
    open_claim_ids,
    raw_history,
    running_app,
    score_item,
    tiny_models,
)


def test_records_name_the_user_or_system_behind_each_key(running_app, raw_history):
    app = running_app
    UserStore(app.app.state.history.engine).create("kim", "auditor", "Kim Auditor")
    keys = app.app.state.keys
    auditor = {"Authorization": f"Bearer {keys.create(user='kim')[1]}"}
    system = {"Authorization": f"Bearer {keys.create('scorer', system='epic-rcm')[1]}"}
    item = score_item(raw_history, open_claim_ids(raw_history)[0])

    scored = app.client.post("/v1/scores", json={"items": [item]}, headers=system).json()
    score_id = scored["scores"][0]["score_id"]
    read = app.client.get(f"/v1/audit/{score_id}", headers=auditor).json()

    assert (read["requester_system"], read["requester_user"]) == ("epic-rcm", None)
    audit = app.app.state.audit
    with audit.engine.connect() as connection:
        ids = connection.exec_driver_sql(
            "SELECT score_id FROM audit_records WHERE kind = 'audit_read'"
        ).scalars()
        reads = [audit.get(score_id) for score_id in ids]
    assert [(r.requester_user, r.requester_role) for r in reads] == [("kim", "auditor")]
    assert audit.verify().ok

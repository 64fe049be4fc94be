"""The worklist: ordering, exclusions (holds, cool-off, write-offs), teams, capacity, paging,
on SQLite and PostgreSQL; the route end to end with a real rescore of sent history."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from serving.policy.config import TeamFilter, load_policy
from serving.worklist.store import Cursor, WorklistError, WorklistStore, account_actions
from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import AS_OF, app_settings, history_body
from tests.serving.worklist.factories import (
    TODAY,
    account_row,
    fresh_rows,
    payer_facts,
    store_rows,
    worklist_app,
)


def _page(engine, **kwargs):
    options = {"today": TODAY, "cool_off_days": 7, "capacity": 100, "limit": 50}
    return WorklistStore(engine).page(**{**options, **kwargs})


def _claims(page) -> list[str]:
    return [row.claim_id for _, row in page.items]


def _act(engine, claim_id: str, acted_on, action: str = "worked") -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.insert(account_actions).values(
                action_id=f"a-{claim_id}-{acted_on}",
                claim_id=claim_id,
                acted_on=acted_on,
                created_at=sa.func.now(),
                action=action,
                score_id=f"score-{claim_id}",
            )
        )


def test_page_priorities_orders_by_net_recovery_per_touch_then_claim(db_engine):
    store_rows(
        db_engine,
        [
            account_row("C1", 500),
            account_row("C2", 9000),
            account_row("C3", 500),
            account_row("C4", -100),
            account_row("C5", 0),
        ],
    )
    assert _claims(_page(db_engine)) == ["C2", "C1", "C3", "C5", "C4"]


def test_page_account_on_hold_is_left_out(db_engine):
    store_rows(db_engine, [account_row("C1", 500), account_row("C2", 900, on_hold=True)])
    page = _page(db_engine)
    assert _claims(page) == ["C1"]
    assert page.n_eligible == 1


def test_page_action_within_cool_off_left_out_until_it_ends(db_engine):
    store_rows(db_engine, [account_row("C1", 500), account_row("C2", 900)])
    _act(db_engine, "C2", TODAY - timedelta(days=3))
    assert _claims(_page(db_engine, cool_off_days=7)) == ["C1"]
    assert _claims(_page(db_engine, cool_off_days=2)) == ["C2", "C1"]
    later = TODAY + timedelta(days=5)
    assert _claims(_page(db_engine, today=later, cool_off_days=7)) == ["C2", "C1"]


def test_page_written_off_account_left_out_after_cool_off(db_engine):
    store_rows(db_engine, [account_row("C1", 500), account_row("C2", 900)])
    _act(db_engine, "C2", TODAY - timedelta(days=60), action="write_off")
    assert _claims(_page(db_engine)) == ["C1"]


def test_page_team_filter_keeps_only_team_accounts(db_engine):
    rows = [
        account_row("P1", 500),
        account_row("M1", 900, facts=payer_facts(payer_type="medicare")),
        account_row("K1", 700, facts=payer_facts(payer_type="commercial")),
    ]
    store_rows(db_engine, rows)
    policy = load_policy()
    government = _page(db_engine, team=policy.teams["government_follow_up"])
    patients = _page(db_engine, team=policy.teams["patient_accounts"])
    assert _claims(government) == ["M1"]
    assert _claims(patients) == ["P1"]
    assert _claims(_page(db_engine, team=TeamFilter(responsibility=("payer",)))) == ["M1", "K1"]


def test_page_capacity_cuts_today_queue_and_rest_waits(db_engine):
    store_rows(db_engine, [account_row(f"C{i}", 1000 - i) for i in range(10)])
    today = _page(db_engine, capacity=4)
    everything = _page(db_engine, capacity=4, queue="all")
    assert _claims(today) == ["C0", "C1", "C2", "C3"]
    assert today.next_cursor is None
    assert (today.n_eligible, today.n_today) == (10, 4)
    assert [rank for rank, _ in everything.items] == list(range(1, 11))


def test_page_cursor_pages_visit_each_account_once_in_order(db_engine):
    rows = [account_row(f"C{i:02d}", (i % 4) * 100) for i in range(23)]
    store_rows(db_engine, rows)
    seen, ranks, cursor = [], [], None
    while True:
        page = _page(db_engine, capacity=20, limit=6, cursor=cursor)
        seen += _claims(page)
        ranks += [rank for rank, _ in page.items]
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor)
    expected = [r.claim_id for r in sorted(rows, key=lambda r: (-r.priority_cents, r.claim_id))]
    assert seen == expected[:20]
    assert ranks == list(range(1, 21))


def test_cursor_tampered_text_raises_worklist_error():
    with pytest.raises(WorklistError, match="cursor"):
        Cursor.decode("not-a-cursor")


@pytest.fixture
def app_on_db(db_url, model_dirs, monkeypatch):
    yield from worklist_app(app_settings(db_url, str(model_dirs[0])), monkeypatch)


def test_worklist_route_after_history_rescored_lists_open_balances_with_audited_scores(
    app_on_db, raw_history, monkeypatch
):
    app = app_on_db
    sent = app.client.post("/v1/history", json=history_body(raw_history), headers=app.headers())
    assert sent.status_code == 200, sent.text

    async def as_of():
        return AS_OF.date()

    from serving.api import deps

    app.app.dependency_overrides[deps.today] = as_of
    answer = app.client.get("/v1/worklist?queue=all&limit=500", headers=app.headers("collector"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    items = body["items"]
    assert items and body["eligible_count"] >= len(items)
    assert all(item["action"] != "hold" for item in items)
    keys = [(-Decimal(i["expected_net_recovery_per_touch"]), i["claim_id"]) for i in items]
    assert keys == sorted(keys)
    assert "patient_key" not in answer.text and "patient_id" not in answer.text
    validated = raw_history.validated().claims
    for identifier in [*raw_history.claims["patient_id"], *validated["patient_key"]][:200]:
        assert f'"{identifier}"' not in answer.text
    first = items[0]
    assert isinstance(first["open_balance"], str)
    record = app.app.state.audit.get(first["score_id"])
    assert record is not None and record.kind == "score" and record.claim_id == first["claim_id"]


def test_worklist_route_scorer_role_is_refused(app_on_db):
    answer = app_on_db.client.get("/v1/worklist", headers=app_on_db.headers("scorer"))
    assert answer.status_code == 403


def test_worklist_route_unknown_team_answers_422_naming_teams(app_on_db):
    fresh_rows(app_on_db.app, [account_row("C1")])
    answer = app_on_db.client.get(
        "/v1/worklist?team=nobody", headers=app_on_db.headers("collector")
    )
    assert answer.status_code == 422
    assert "patient_accounts" in answer.json()["detail"]


def test_worklist_route_capacity_marks_today_queue_and_waiting(app_on_db):
    fresh_rows(app_on_db.app, [account_row(f"C{i}", 100 * (5 - i)) for i in range(5)])
    headers = app_on_db.headers("collector")
    today = app_on_db.client.get("/v1/worklist?capacity=2", headers=headers).json()
    everything = app_on_db.client.get("/v1/worklist?capacity=2&queue=all", headers=headers).json()
    assert [i["claim_id"] for i in today["items"]] == ["C0", "C1"]
    assert (today["today_count"], today["waiting_count"]) == (2, 3)
    assert [i["in_today_queue"] for i in everything["items"]] == [True, True, False, False, False]


def test_worklist_route_team_filter_returns_only_team(app_on_db):
    rows = [
        account_row("P1", 500),
        account_row("M1", 900, facts=payer_facts(payer_type="medicare")),
    ]
    fresh_rows(app_on_db.app, rows)
    answer = app_on_db.client.get(
        "/v1/worklist?team=patient_accounts", headers=app_on_db.headers("collector")
    )
    assert [i["claim_id"] for i in answer.json()["items"]] == ["P1"]


def test_worklist_route_model_changed_rescores_on_read(app_on_db):
    fresh_rows(app_on_db.app, [account_row("C1")])
    engine = app_on_db.app.state.history.engine
    store = WorklistStore(engine)
    store.replace([store.account("C1")], replace(store.state(), model_sha256="b" * 64))
    answer = app_on_db.client.get("/v1/worklist", headers=app_on_db.headers("collector"))
    assert answer.status_code == 200
    assert store.state().model_sha256 == app_on_db.app.state.scorer.loaded.sha256
    assert answer.json()["items"] == []  # no history stored: the rescore found nothing open

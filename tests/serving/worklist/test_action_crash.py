"""Nothing lost, nothing doubled: a server killed between an action's audit record and its
``account_actions`` row leaves neither, so the chain and the month-end report agree; on SQLite
and PostgreSQL.

The write-off goes through the real route in a child process, which dies (``os._exit``, no
clean-up, as ``kill -9``) the moment it sends the ``account_actions`` insert."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from serving.audit.tables import audit_records
from serving.worklist.writeoffs import build_report
from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import app_settings
from tests.serving.worklist.factories import TODAY, patient_account, stored_accounts, worklist_app

REPO = Path(__file__).resolve().parents[3]
BAD_DEBT = {"action": "write_off", "category": "bad_debt", "note": "no response to 4 statements"}
CHILD = textwrap.dedent(
    """
    import json, os, sys
    from datetime import date

    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from serving.api import deps
    from serving.api.app import create_app
    from tests.serving.fixtures_app import app_settings

    database_url, model_dir, token, body = sys.argv[1:5]
    app = create_app(app_settings(database_url, model_dir))

    async def pinned_today():
        return date.fromisoformat(sys.argv[5])

    app.dependency_overrides[deps.today] = pinned_today
    with TestClient(app) as client:
        engine = app.state.audit.engine

        @sa.event.listens_for(engine, "before_cursor_execute")
        def crash(conn, cursor, statement, parameters, context, executemany):
            if statement.lstrip().upper().startswith("INSERT INTO ACCOUNT_ACTIONS"):
                os._exit(9)  # killed between the audit record and the actions row

        client.post(
            "/v1/accounts/C1/actions",
            json=json.loads(body),
            headers={"Authorization": f"Bearer {token}"},
        )
    sys.exit(0)  # not reached: the insert above always comes
    """
)


@pytest.fixture
def app(db_url, model_dirs, monkeypatch):
    yield from worklist_app(app_settings(db_url, str(model_dirs[0])), monkeypatch)


def _chain_write_offs(engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit_records.c.score_id, audit_records.c.payload).where(
                audit_records.c.kind == "account_action"
            )
        ).all()
    return [score_id for score_id, payload in rows if json.loads(payload)["action"] == "write_off"]


def test_action_killed_between_audit_record_and_row_leaves_neither(app, db_url, model_dirs):
    stored_accounts(app.app, [patient_account("C1")])
    engine = app.app.state.audit.engine
    args = [db_url, str(model_dirs[0]), app.tokens["collector"], json.dumps(BAD_DEBT)]

    child = subprocess.run(
        [sys.executable, "-c", CHILD, *args, TODAY.isoformat()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert child.returncode == 9, child.stderr[-2000:]
    period = TODAY.strftime("%Y-%m")
    assert _chain_write_offs(engine) == [] == build_report(engine, period).lines
    assert app.app.state.audit.verify().ok
    retried = app.client.post(
        "/v1/accounts/C1/actions", json=BAD_DEBT, headers=app.headers("collector")
    )
    assert retried.status_code == 201, retried.text
    (line,) = build_report(engine, period).lines
    assert _chain_write_offs(engine) == [line.action_id]

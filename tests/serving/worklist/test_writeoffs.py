"""The write-off report: totals equal the recorded write-offs, CSV and HTML, the CLI; on SQLite
and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from arscore import commands_worklist
from features.errors import ArscoreError
from serving.audit.tables import audit_records
from serving.worklist.writeoffs import (
    build_report,
    parse_period,
    render_html,
    totals_csv,
    write_report,
)
from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import app_settings
from tests.serving.worklist.factories import (
    TODAY,
    patient_account,
    payer_account,
    stored_accounts,
    worklist_app,
)

WRITE_OFFS = [
    ("C1", {"category": "bad_debt", "amount": "120.10"}, None),
    ("C2", {"category": "bad_debt", "amount": "1500.00"}, "approver"),
    ("C3", {"category": "small_balance", "amount": "12.34"}, None),
    ("C4", {"category": "denial", "amount": "410.00", "carc_code": "CO-29"}, None),
]


@pytest.fixture
def app(db_url, model_dirs, monkeypatch):
    yield from worklist_app(app_settings(db_url, str(model_dirs[0])), monkeypatch)


def _record_write_offs(app) -> None:
    stored_accounts(
        app.app,
        [
            patient_account("C1", balance="900.00"),
            patient_account("C2", balance="2000.00", payer_type="medicare"),
            patient_account("C3", balance="12.34", action="small_balance_write_off"),
            payer_account("C4", balance="410.00", denial="CO-29", action="denial_write_off"),
            patient_account("C5", action="follow_up"),
        ],
    )
    for claim_id, fields, approver in WRITE_OFFS:
        headers = app.headers("collector")
        if approver:
            headers["X-Approver-Key"] = app.tokens[approver]
        body = {"action": "write_off", "note": "documented in the account notes", **fields}
        answer = app.client.post(f"/v1/accounts/{claim_id}/actions", json=body, headers=headers)
        assert answer.status_code == 201, answer.text
    worked = {"action": "worked", "outcome": "paid"}
    app.client.post("/v1/accounts/C5/actions", json=worked, headers=app.headers("collector"))


def _audited_write_off_dollars(engine) -> Decimal:
    import json

    with engine.connect() as connection:
        payloads = connection.execute(
            sa.select(audit_records.c.payload).where(audit_records.c.kind == "account_action")
        ).scalars()
        amounts = [json.loads(p) for p in payloads]
    return sum((Decimal(p["amount"]) for p in amounts if p["action"] == "write_off"), Decimal(0))


def test_report_totals_equal_sum_of_recorded_write_offs(app):
    _record_write_offs(app)
    engine = app.app.state.history.engine
    report = build_report(engine, TODAY.strftime("%Y-%m"))
    expected = sum(Decimal(f["amount"]) for _, f, _ in WRITE_OFFS)
    assert report.count == 4
    assert report.amount == expected == _audited_write_off_dollars(engine)
    assert sum(t.amount for t in report.totals) == expected
    assert sum(t.count for t in report.totals) == 4
    by_key = {(t.category, t.payer_type): t for t in report.totals}
    assert by_key[("bad_debt", "medicare")].amount == Decimal("1500.00")


def test_report_lines_carry_reason_carc_approver_score_and_policy(app):
    _record_write_offs(app)
    report = build_report(app.app.state.history.engine, TODAY.strftime("%Y-%m"))
    lines = {line.claim_id: line for line in report.lines}
    assert lines["C4"].carc_code == "CO-29"
    assert lines["C2"].approver_role == "approver" and lines["C1"].approver_key_id is None
    assert all(line.score_id == f"score-{line.claim_id}" for line in report.lines)
    assert {line.policy_version for line in report.lines} == {app.app.state.policy_version}
    assert all(line.reason == "documented in the account notes" for line in report.lines)


def test_report_other_month_is_empty(app):
    _record_write_offs(app)
    report = build_report(app.app.state.history.engine, "2026-09")
    assert (report.count, report.amount, report.totals) == (0, Decimal("0.00"), [])


def test_report_csv_total_row_and_html_chart(app, tmp_path):
    _record_write_offs(app)
    report = build_report(app.app.state.history.engine, TODAY.strftime("%Y-%m"))
    rows = list(csv.DictReader(io.StringIO(totals_csv(report))))
    assert rows[-1]["category"] == "TOTAL"
    assert Decimal(rows[-1]["amount"]) == report.amount
    assert sum(Decimal(r["amount"]) for r in rows[:-1]) == report.amount
    page = render_html(report)
    assert "data:image/png;base64," in page and "CO-29" in page
    paths = write_report(report, tmp_path)
    assert sorted(p.name for p in paths) == [
        "writeoffs_2026-10.csv",
        "writeoffs_2026-10.html",
        "writeoffs_2026-10_totals.csv",
    ]


def test_parse_period_bad_month_raises_naming_format():
    assert parse_period("2026-12") == (date(2026, 12, 1), date(2026, 12, 31))
    with pytest.raises(ArscoreError, match="YYYY-MM"):
        parse_period("2026-13")


def test_cli_writeoffs_report_writes_files_with_total(app, db_url, tmp_path, monkeypatch):
    from serving.settings import get_settings

    _record_write_offs(app)
    monkeypatch.setenv("ARSCORE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    cli = typer.Typer()
    commands_worklist.register(cli)
    try:
        result = CliRunner().invoke(
            cli, ["writeoffs", "report", "--period", "2026-10", "--out", str(tmp_path)]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "4 write-offs, $2,042.44" in result.output
    assert (tmp_path / "writeoffs_2026-10.html").exists()

"""The write-off documentation of one month, for finance and auditors: CSV and an HTML page.

Read from ``account_actions`` (each row the index of an ``account_action`` audit record, whose
id is ``action_id``): every write-off recorded in the month, with its category, payer, dollars,
the collector's note (the reason), the CARC, who asked for it and who approved it (users, as
well as keys), the write-off request it came from, and the score and policy version it was
decided under; and per category and payer, the count and dollars. Amounts are summed as
integer cents, so the totals equal the sum of the recorded write-offs exactly.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

from features.errors import ArscoreError
from features.money import cents_to_dollars
from serving.worklist.store import WRITE_OFF, account_actions

PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class WriteOffLine:
    """One recorded write-off."""

    action_id: str
    claim_id: str
    acted_on: date
    category: str
    payer_type: str
    payer_id: str
    amount: Decimal
    carc_code: str | None
    reason: str | None
    override_reason: str | None
    recommended_action: str | None
    collector_key_id: str | None
    approver_key_id: str | None
    approver_role: str | None
    requested_by: str | None  # the collector's user, or "system NAME"; None: a key of no one
    approver_user: str | None
    write_off_request_id: str | None
    score_id: str
    model_version: str | None
    probability_collected: float | None
    policy_version: str | None


@dataclass(frozen=True)
class CategoryPayerTotal:
    """Count and dollars of one category with one payer."""

    category: str
    payer_type: str
    payer_id: str
    count: int
    amount: Decimal


@dataclass(frozen=True)
class WriteOffReport:
    """A month of write-offs: every line, the totals per category and payer, the grand total."""

    period: str
    start: date
    end: date
    lines: list[WriteOffLine]
    totals: list[CategoryPayerTotal]

    @property
    def count(self) -> int:
        return len(self.lines)

    @property
    def amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


def parse_period(period: str) -> tuple[date, date]:
    """The first and last day of a month written YYYY-MM."""
    match = PERIOD.match(period.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ArscoreError(f"period {period!r}: expected a month as YYYY-MM, e.g. 2026-10")
    year, month = int(match.group(1)), int(match.group(2))
    start = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return start, date.fromordinal(following.toordinal() - 1)


def build_report(engine: Engine, period: str) -> WriteOffReport:
    """Every write-off recorded in the month, and the totals per category and payer."""
    start, end = parse_period(period)
    a = account_actions
    query = (
        sa.select(a)
        .where(a.c.action == WRITE_OFF, a.c.acted_on >= start, a.c.acted_on <= end)
        .order_by(a.c.category, a.c.payer_type, a.c.payer_id, a.c.acted_on, a.c.id)
    )
    with engine.connect() as connection:
        rows = list(connection.execute(query))
    lines = [
        WriteOffLine(
            action_id=r.action_id,
            claim_id=r.claim_id,
            acted_on=r.acted_on,
            category=r.category,
            payer_type=r.payer_type or "",
            payer_id=r.payer_id or "",
            amount=cents_to_dollars(r.amount_cents) or Decimal("0.00"),
            carc_code=r.carc_code,
            reason=r.note,
            override_reason=r.override_reason,
            recommended_action=r.recommended_action,
            collector_key_id=r.collector_key_id,
            approver_key_id=r.approver_key_id,
            approver_role=r.approver_role,
            requested_by=r.collector_user
            or (None if r.collector_system is None else f"system {r.collector_system}"),
            approver_user=r.approver_user,
            write_off_request_id=r.write_off_request_id,
            score_id=r.score_id,
            model_version=r.model_version,
            probability_collected=r.probability_collected,
            policy_version=r.policy_version,
        )
        for r in rows
    ]
    return WriteOffReport(period, start, end, lines, totals_of(lines))


def totals_of(lines: list[WriteOffLine]) -> list[CategoryPayerTotal]:
    """Count and dollars per (category, payer type, payer id), in that order."""
    groups: dict[tuple[str, str, str], list[Decimal]] = defaultdict(list)
    for line in lines:
        groups[(line.category, line.payer_type, line.payer_id)].append(line.amount)
    return [
        CategoryPayerTotal(*key, len(amounts), sum(amounts, Decimal("0.00")))
        for key, amounts in sorted(groups.items())
    ]


def _csv_text(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def lines_csv(report: WriteOffReport) -> str:
    """Every write-off, one row each."""
    names = [f.name for f in fields(WriteOffLine)]
    return _csv_text(names, [[getattr(line, n) for n in names] for line in report.lines])


def totals_csv(report: WriteOffReport) -> str:
    """Count and dollars per category and payer, and a TOTAL row."""
    names = [f.name for f in fields(CategoryPayerTotal)]
    rows = [[getattr(t, n) for n in names] for t in report.totals]
    rows.append(["TOTAL", "", "", report.count, report.amount])
    return _csv_text(names, rows)


def chart_png(report: WriteOffReport) -> bytes:
    """Dollars written off per category, stacked by payer type (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = sorted({t.category for t in report.totals})
    payer_types = sorted({t.payer_type for t in report.totals})
    figure, axes = plt.subplots(figsize=(8, 4), dpi=100)
    bottom = [0.0] * len(categories)
    for payer_type in payer_types:
        heights = [
            float(
                sum(
                    (
                        t.amount
                        for t in report.totals
                        if t.category == c and t.payer_type == payer_type
                    ),
                    Decimal(0),
                )
            )
            for c in categories
        ]
        axes.bar(categories, heights, bottom=bottom, label=payer_type)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("dollars written off")
    axes.set_title(f"Write-offs {report.period} by category and payer type")
    if payer_types:
        axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _table(header: list[str], rows: list[list[object]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _approver(line: WriteOffLine) -> str:
    """Who approved a write-off, as the report shows it: the user, else the key."""
    if line.approver_key_id is None:
        return "not required"
    who = line.approver_user or f"key {line.approver_key_id}"
    return f"{who} ({line.approver_role})"


def render_html(report: WriteOffReport) -> str:
    """A readable page: totals, the chart (embedded PNG) and every write-off."""
    chart = base64.b64encode(chart_png(report)).decode("ascii")
    totals = _table(
        ["category", "payer type", "payer", "count", "dollars"],
        [[t.category, t.payer_type, t.payer_id, t.count, f"{t.amount:,.2f}"] for t in report.totals]
        + [["TOTAL", "", "", report.count, f"{report.amount:,.2f}"]],
    )
    lines = _table(
        [
            "date",
            "claim",
            "category",
            "payer",
            "dollars",
            "CARC",
            "reason",
            "override reason",
            "collector",
            "approver",
            "score",
            "model",
            "probability",
            "policy version",
            "audit record",
        ],
        [
            [
                x.acted_on,
                x.claim_id,
                x.category,
                f"{x.payer_type} {x.payer_id}",
                f"{x.amount:,.2f}",
                x.carc_code,
                x.reason,
                x.override_reason,
                x.requested_by or f"key {x.collector_key_id}",
                _approver(x),
                x.score_id,
                x.model_version,
                "" if x.probability_collected is None else f"{x.probability_collected:.3f}",
                x.policy_version,
                x.action_id,
            ]
            for x in report.lines
        ],
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}th{background:#eee}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Write-offs {report.period}"
        f"</title><style>{style}</style></head><body><h1>Write-offs {report.period}</h1>"
        f"<p>{report.start} to {report.end}: {report.count} write-offs, "
        f"${report.amount:,.2f}. Each line is an audit record (<code>arscore audit verify</code> "
        "checks the chain).</p><h2>By category and payer</h2>"
        f"{totals}<img alt='dollars by category and payer type' "
        f"src='data:image/png;base64,{chart}'><h2>Every write-off</h2>{lines}</body></html>"
    )


def write_report(report: WriteOffReport, out: Path) -> list[Path]:
    """writeoffs_<period>.csv (lines), writeoffs_<period>_totals.csv and .html in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"writeoffs_{report.period}"
    written = {
        out / f"{stem}.csv": lines_csv(report),
        out / f"{stem}_totals.csv": totals_csv(report),
        out / f"{stem}.html": render_html(report),
    }
    for path, text in written.items():
        path.write_text(text, encoding="utf-8")
    return list(written)

"""The model card of a cash forecast model, as Markdown and HTML (``training.model_card``'s
renderers). Aggregates only: no claim, patient or account identifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from training.model_card import Section, Table, render_html, render_markdown

INTENDED_USE = (
    "Forecasts the cash that today's open A/R brings in per week over the next 13 weeks, by "
    "payer type and by side (payments by payers, payments by patients), with 80% and 95% "
    "intervals, for finance's 13-week cash view.",
    "It forecasts receipts from balances open at the as-of date only: new charges (claims "
    "billed later) and their cash are not in it, nor are refunds, interest or other income.",
    "It is not a collectibility score of an account and decides nothing about one.",
)
LIMITS = (
    "The intervals are calibrated on past forecast errors (split-conformal on rolling "
    "origins): they hold while the future behaves like the calibration window. A payer "
    "system change, a policy change or a mix shift widens the real errors before the "
    "calibration catches up; watch the realized coverage.",
    "The figures below come from the history it was trained on; real histories are noisier "
    "than the synthetic one.",
)
TABLE_COLUMNS = {
    "week": "Week",
    "origins": "Origins",
    "wape_model": "WAPE model",
    "wape_liquidation_curve": "WAPE liquidation curve",
    "wape_trailing_13_weeks": "WAPE trailing 13 weeks",
    "bias_model": "Bias model",
    "pinball_model": "Pinball (scaled)",
    "coverage_80": "Coverage 80%",
    "coverage_95": "Coverage 95%",
}


def _cell(column: str, value: Any) -> str:
    if column in ("week",):
        return str(value)
    if column == "origins":
        return f"{int(value)}"
    if pd.isna(value):
        return "n/a"
    if column.startswith(("coverage", "wape", "bias")):
        return f"{value:.1%}"
    return f"{value:.3f}"


def backtest_table(table: pd.DataFrame) -> Table:
    """The per-week backtest figures; the lower WAPE of model and liquidation curve in bold."""
    rows = []
    for record in table.to_dict("records"):
        best = min(record["wape_model"], record["wape_liquidation_curve"])
        row = []
        for column in TABLE_COLUMNS:
            bold = column.startswith("wape_") and column != "wape_trailing_13_weeks"
            row.append((_cell(column, record[column]), bold and record[column] == best))
        rows.append(row)
    return Table(list(TABLE_COLUMNS.values()), rows)


def card_sections(
    table: pd.DataFrame, sides: pd.DataFrame, summary: dict[str, float], context: dict[str, Any]
) -> list[Section]:
    """The card's content."""
    side_rows = [
        [
            (str(r["side"]), False),
            (f"{r['wape_model']:.1%}", False),
            (f"{r['wape_liquidation_curve']:.1%}", False),
            (f"{r['bias_model']:+.1%}", False),
        ]
        for r in sides.to_dict("records")
    ]
    headline = (
        f"Weeks 1-13 pooled: WAPE {summary['wape_model']:.1%} against the liquidation curve's "
        f"{summary['wape_liquidation_curve']:.1%} ({summary['wape_reduction_vs_liquidation']:.1%}"
        f" lower) and the trailing 13-week average's {summary['wape_trailing_13_weeks']:.1%}; "
        f"realized coverage {summary['coverage_80']:.1%} (80% intervals) and "
        f"{summary['coverage_95']:.1%} (95%)."
    )
    details = [f"{key}: {value}" for key, value in context.items()]
    return [
        ("Intended use", [list(INTENDED_USE)]),
        ("Limits", [list(LIMITS)]),
        ("Backtest", [headline, backtest_table(table)]),
        (
            "By side of the cash (weeks 1-13, monthly origins)",
            [Table(["Side", "WAPE model", "WAPE liquidation curve", "Bias model"], side_rows)],
        ),
        ("Details", [details]),
    ]


def write_forecast_card(
    table: pd.DataFrame,
    sides: pd.DataFrame,
    summary: dict[str, float],
    context: dict[str, Any],
    out_dir: Path,
) -> tuple[Path, Path]:
    """model_card.md and model_card.html in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = context.get("model_name", "arscore-cash")
    version = context.get("model_version")
    heading = f"Model card: {name}" + (f" (version {version})" if version else "")
    sections = card_sections(table, sides, summary, context)
    md_path, html_path = out_dir / "model_card.md", out_dir / "model_card.html"
    md_path.write_text(render_markdown(heading, sections, out_dir), encoding="utf-8")
    html_path.write_text(render_html(heading, sections, out_dir), encoding="utf-8")
    return md_path, html_path

"""The forecast page: a fan chart of the total and a table holding every figure, escaped."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from arscore.cli import app
from arscore.forecast_page import forecast_page
from features.cash_weeks import week_bounds


def _frame() -> pd.DataFrame:
    bounds = week_bounds(pd.Timestamp("2026-09-30"), 3)
    total = bounds.assign(payer_type=pd.NA, expected=[100.0, 80.0, 60.0])
    group = bounds.assign(payer_type="<b>commercial</b>", expected=[90.0, 70.0, 50.0])
    frame = pd.concat([total, group], ignore_index=True)
    frame["lower_80"], frame["upper_80"] = frame["expected"] * 0.8, frame["expected"] * 1.2
    frame["lower_95"], frame["upper_95"] = frame["expected"] * 0.6, frame["expected"] * 1.4
    frame["open_balance"] = 1_000.0
    frame.insert(0, "as_of", pd.Timestamp("2026-09-30"))
    return frame


def test_forecast_page_has_both_bands_the_line_and_every_row_escaped():
    page = forecast_page(_frame(), ("payer_type",), "model: arscore-cash version 1")
    assert page.count("<polygon") == 2 and page.count("<polyline") == 1
    assert page.count("<tr>") == 1 + 6  # header and one row per week and group
    assert "&lt;b&gt;commercial&lt;/b&gt;" in page and "<b>commercial" not in page
    assert "$240 over 3 weeks" in page  # the total rows only: 100 + 80 + 60


def test_cli_forecast_cash_unknown_breakdown_fails_with_a_clear_error(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "forecast",
            "cash",
            "--history",
            str(tmp_path),
            "--as-of",
            "2026-09-30",
            "--by",
            "zip3",
            "--out",
            str(tmp_path / "f.csv"),
        ],
    )
    assert result.exit_code != 0
    assert "payer_type, responsibility" in str(result.exception)
    assert not (tmp_path / "f.csv").exists()

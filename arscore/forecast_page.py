"""The HTML page of a cash forecast: a fan chart of the total (inline SVG) and the data table.

One self-contained file, no script: the 95% band, the 80% band inside it and the expected
line, week by week; the table beside it holds every figure the chart shows (and the groups).
"""

from __future__ import annotations

import html

import pandas as pd

WIDTH, HEIGHT, MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 720, 320, 90, 40, 20
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
    "th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}"
    "th:first-child,td:first-child{text-align:left}caption{text-align:left;font-weight:600}"
)


def _money(value: float) -> str:
    return f"${value:,.0f}"


def _points(xs: list[float], ys: list[float]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def fan_chart(total: pd.DataFrame) -> str:
    """SVG fan chart of the total rows (one per week)."""
    total = total.sort_values("week")
    weeks = total["week"].tolist()
    top = max(float(total["upper_95"].max()), 1.0)
    plot_w = WIDTH - MARGIN_LEFT - 20
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def x(week: float) -> float:
        span = max(len(weeks) - 1, 1)
        return MARGIN_LEFT + plot_w * (week - weeks[0]) / span

    def y(value: float) -> float:
        return MARGIN_TOP + plot_h * (1 - value / top)

    xs = [x(w) for w in weeks]
    parts = [
        f'<svg role="img" aria-labelledby="fan-title" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}"><title id="fan-title">Expected weekly cash with 80% '
        "and 95% intervals</title>"
    ]
    for low, high, color in (
        ("lower_95", "upper_95", "#c6dbef"),
        ("lower_80", "upper_80", "#6baed6"),
    ):
        upper = [y(v) for v in total[high]]
        lower = [y(v) for v in total[low]]
        parts.append(
            f'<polygon fill="{color}" points="{_points(xs + xs[::-1], upper + lower[::-1])}"/>'
        )
    parts.append(
        f'<polyline fill="none" stroke="#08306b" stroke-width="2" '
        f'points="{_points(xs, [y(v) for v in total["expected"]])}"/>'
    )
    for tick in range(5):
        value = top * tick / 4
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{html.escape(_money(value))}</text>'
        )
    for week, position in zip(weeks, xs, strict=True):
        parts.append(
            f'<text x="{position:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11">{week}</text>'
        )
    parts.append(
        f'<text x="{MARGIN_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
        'font-size="12">week after the as-of date</text></svg>'
    )
    return "".join(parts)


def _table(frame: pd.DataFrame) -> str:
    columns = [c for c in frame.columns if c != "as_of"]
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in columns)
    body = []
    for record in frame.to_dict("records"):
        cells = []
        for column in columns:
            value = record[column]
            if isinstance(value, pd.Timestamp):
                text = value.date().isoformat()
            elif isinstance(value, float):
                text = _money(value)
            elif value is None or (not isinstance(value, str) and pd.isna(value)):
                text = "total"
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table><caption>Expected cash per week and intervals (dollars)</caption><thead><tr>"
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


def forecast_page(frame: pd.DataFrame, group_columns: tuple[str, ...], model_text: str) -> str:
    """The whole page for a forecast frame (``features.cash_forecast``)."""
    as_of = pd.Timestamp(frame["as_of"].iloc[0]).date().isoformat()
    total = frame
    for column in group_columns:
        total = total[total[column].isna()]
    weeks = int(total["week"].max())
    expected = float(total["expected"].sum())
    title = f"Cash forecast as of {as_of}: {weeks} weeks"
    summary = (
        f"Expected cash from the balances open on {as_of}: {_money(expected)} over {weeks} "
        "weeks. New charges (claims billed later) are not included. The bands are the 80% and "
        "95% intervals, calibrated on the errors of past forecasts."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(summary)}</p>\n"
        f"<p>{html.escape(model_text)}</p>\n<figure>{fan_chart(total)}</figure>\n"
        f"{_table(frame)}\n</body>\n</html>\n"
    )

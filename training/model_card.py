"""The model card of a training run, as Markdown and as a self-contained HTML page.

The card is built once as a list of blocks (paragraphs, bullet lists, tables, images) and
rendered twice. Every text that comes from the run is escaped in both renderings. The card
holds aggregates only: no claim, patient or account identifiers.
"""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path

from training.evaluation import TOP_K_PERCENTS, Evaluation
from training.plots import primary_model

KNOWN_CONTEXT_KEYS = (
    "model_name",
    "model_version",
    "data_window",
    "label",
    "split",
    "recovery_model",
    "features",
)
METRIC_LABELS = {
    "n": "Balances (n)",
    "positive_rate": "Collected rate",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC (average precision)",
    "brier": "Brier score",
    "log_loss": "Log loss",
    "ece": "Expected calibration error",
    "lift_top10": "Dollar lift, top 10%",
    "lift_top20": "Dollar lift, top 20%",
    "dollars_share_top10": "Share of recovered $, top 10%",
    "dollars_share_top20": "Share of recovered $, top 20%",
    "expected_to_recovered_dollars": "Expected / recovered dollars",
}
HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "lift_top10", "lift_top20"}
HIGHER_IS_BETTER |= {"dollars_share_top10", "dollars_share_top20"}
LOWER_IS_BETTER = {"brier", "log_loss", "ece"}
INTENDED_USE = (
    "Ranks open healthcare accounts-receivable balances by the probability that they are "
    "collected within the label horizon and by the dollars expected back, so that collectors "
    "work a prioritized worklist.",
    "It is not a credit decision. It does not decide eligibility for financial assistance, "
    "care, prices or payment terms.",
    "Rules and policy decide actions, not the model: IRS 501(r) reasonable efforts and "
    "financial-assistance screening, No Surprises Act disputes, open appeals and state rules "
    "are applied by the decision policy whatever the score.",
    "Not for individual patients' clinical data: the inputs are account-level billing facts.",
)
LIMITS = (
    "Measured on the test window below; payer mix, policy or process changes move the scores. "
    "Monitor calibration and the capacity figures after every change.",
    "Slice ratios are a first disparate-impact view (mean score of a group over the overall "
    "mean), not a fairness audit; compare them with the group's observed collected rate.",
    "Recovered dollars in the capacity figures are payments within the horizon, not net of "
    "the cost to collect.",
)


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[tuple[str, bool]]]  # (text, bold) per cell


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


Block = str | list[str] | Table | Image  # paragraph, bullet list, table, image
Section = tuple[str, list[Block]]


def format_metric(metric: str, value: float) -> str:
    """A metric value as shown in the card."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric == "n":
        return f"{int(value):,}"
    if metric == "positive_rate" or metric.startswith("dollars_share"):
        return f"{value:.1%}"
    if metric.startswith("lift") or metric == "expected_to_recovered_dollars":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_describe(item)}" for key, item in value.items())
    if isinstance(value, list | tuple | set):
        return ", ".join(_describe(item) for item in value)
    return str(value)


def _best(metric: str, values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if len(finite) < 2 or metric not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
        return None
    return max(finite) if metric in HIGHER_IS_BETTER else min(finite)


def metrics_table(evaluation: Evaluation) -> Table:
    """All models side by side, one metric a row, the best value of each metric in bold."""
    models = list(evaluation.metrics)
    names = list(METRIC_LABELS)
    names += sorted({m for values in evaluation.metrics.values() for m in values} - set(names))
    rows = []
    for metric in names:
        values = [evaluation.metrics[model].get(metric, float("nan")) for model in models]
        best = _best(metric, values)
        cells = [(format_metric(metric, v), best is not None and v == best) for v in values]
        rows.append([(METRIC_LABELS.get(metric, metric), False), *cells])
    return Table(["Metric", *models], rows)


def capacity_table(evaluation: Evaluation) -> Table:
    """Dollars and share of recovered dollars when collectors work the top 10% and 20%."""
    capacity = evaluation.capacity.set_index(["model", "k_percent"])
    header = ["Model"]
    for k in TOP_K_PERCENTS:
        header += [f"Top {k}%: recovered $", f"Top {k}%: share", f"Top {k}%: lift"]
    rows = []
    for model, metrics in evaluation.metrics.items():
        row = [(model, False)]
        for k in TOP_K_PERCENTS:
            dollars = capacity["dollars_recovered"].get((model, k), float("nan"))
            row += [
                ("n/a" if math.isnan(dollars) else f"${dollars:,.0f}", False),
                (
                    format_metric(f"dollars_share_top{k}", metrics.get(f"dollars_share_top{k}")),
                    False,
                ),
                (format_metric(f"lift_top{k}", metrics.get(f"lift_top{k}")), False),
            ]
        rows.append(row)
    return Table(header, rows)


def slices_table(evaluation: Evaluation, model: str) -> Table:
    """One model's non-empty slices: size, collected rate, mean score, ratio to overall, AUC."""
    slices = evaluation.slices
    slices = slices[(slices["model"] == model) & (slices["n"] > 0)]
    rows = [
        [
            (str(row.slice_column), False),
            (str(row.slice_value), False),
            (f"{int(row.n):,}", False),
            (format_metric("positive_rate", row.positive_rate), False),
            (format_metric("mean_score", row.mean_score), False),
            (format_metric("ratio", row.score_ratio_to_overall), False),
            (format_metric("roc_auc", row.roc_auc), False),
        ]
        for row in slices.itertuples(index=False)
    ]
    header = ["Slice", "Value", "n", "Collected rate", "Mean score", "Score ratio", "AUC"]
    return Table(header, rows)


def _text(context: dict, key: str) -> str:
    value = context.get(key)
    return "Not recorded for this run." if value in (None, "", [], {}) else _describe(value)


def _features(value: object) -> list[str]:
    if isinstance(value, dict):
        return [f"{name}: {_describe(note)}" for name, note in value.items()]
    if isinstance(value, list | tuple):
        return [_describe(item) for item in value]
    return [_describe(value)] if value else ["Not recorded for this run."]


def _or_none(table: Table | None) -> Block:
    return table if table is not None and table.rows else "None."


def title(context: dict) -> str:
    """Model card title: the model name and version when the run gives them."""
    name = context.get("model_name") or "arscore collectibility model"
    version = context.get("model_version")
    return f"Model card: {name}" + (f" (version {version})" if version not in (None, "") else "")


def card_sections(evaluation: Evaluation, context: dict, plots: list[Path]) -> list[Section]:
    """The card's content, independent of how it is rendered."""
    model = primary_model(list(evaluation.metrics))
    details = [
        f"{key}: {_describe(context[key])}" for key in context if key not in KNOWN_CONTEXT_KEYS
    ]
    sections: list[Section] = [
        ("Intended use", [list(INTENDED_USE)]),
        ("Limits", [list(LIMITS)]),
        ("Data window", [_text(context, "data_window")]),
        ("Label", [_text(context, "label")]),
        ("Training, validation and test split", [_text(context, "split")]),
        ("Recovery model", [_text(context, "recovery_model")]),
        (
            "Metrics on the test window",
            ["Best value per metric in bold.", metrics_table(evaluation)],
        ),
        (
            "Capacity",
            [
                "Recovered dollars found if collectors work the top k% of balances ranked by "
                "expected recovery; lift is the share captured over k%.",
                capacity_table(evaluation),
            ],
        ),
        (
            f"Slices ({model or 'no model'})",
            [
                "Score ratio: the slice's mean score over the overall mean score. AUC is n/a "
                "where a slice holds a single outcome.",
                _or_none(slices_table(evaluation, model) if model else None),
            ],
        ),
        ("Plots", [Image(Path(p), Path(p).stem.replace("_", " ")) for p in plots] or ["None."]),
        ("Features", [_features(context.get("features"))]),
    ]
    if details:
        sections.append(("Details", [details]))
    return sections


def _md_escape(text: str, in_table: bool = False) -> str:
    escaped = html.escape(text, quote=False)
    return escaped.replace("|", "\\|") if in_table else escaped


def _md_block(block: Block, out_dir: Path) -> str:
    if isinstance(block, str):
        return _md_escape(block)
    if isinstance(block, list):
        return "\n".join(f"- {_md_escape(item)}" for item in block)
    if isinstance(block, Image):
        return f"![{_md_escape(block.alt)}]({os.path.relpath(block.path, out_dir)})"

    def cell(text: str, bold: bool) -> str:
        return f"**{_md_escape(text, True)}**" if bold else _md_escape(text, True)

    lines = ["| " + " | ".join(_md_escape(h, True) for h in block.header) + " |"]
    lines.append("|" + "---|" * len(block.header))
    lines += ["| " + " | ".join(cell(*c) for c in row) + " |" for row in block.rows]
    return "\n".join(lines)


def render_markdown(heading: str, sections: list[Section], out_dir: Path) -> str:
    """The card as Markdown; images by path relative to the card."""
    parts = [f"# {_md_escape(heading)}"]
    for name, blocks in sections:
        parts.append(f"## {_md_escape(name)}")
        parts += [_md_block(block, out_dir) for block in blocks]
    return "\n\n".join(parts) + "\n"


def _html_image(image: Image, out_dir: Path) -> str:
    alt = html.escape(image.alt)
    if image.path.is_file():
        data = base64.b64encode(image.path.read_bytes()).decode("ascii")
        return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"></figure>'
    source = html.escape(os.path.relpath(image.path, out_dir))
    return f'<figure><img src="{source}" alt="{alt}"></figure>'


def _html_block(block: Block, out_dir: Path) -> str:
    if isinstance(block, str):
        return f"<p>{html.escape(block)}</p>"
    if isinstance(block, list):
        return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in block) + "</ul>"
    if isinstance(block, Image):
        return _html_image(block, out_dir)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td><strong>{html.escape(t)}</strong></td>" if bold else f"<td>{html.escape(t)}</td>"
            for t, bold in row
        )
        + "</tr>"
        for row in block.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45}table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;"
    "padding:.25rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}"
    "img{max-width:100%}figure{margin:1rem 0}"
)


def render_html(heading: str, sections: list[Section], out_dir: Path) -> str:
    """The card as one HTML page with the images embedded."""
    body = [f"<h1>{html.escape(heading)}</h1>"]
    for name, blocks in sections:
        body.append(f"<h2>{html.escape(name)}</h2>")
        body += [_html_block(block, out_dir) for block in blocks]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(heading)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_model_card(
    evaluation: Evaluation, context: dict, plots: list[Path], out_dir: Path
) -> tuple[Path, Path]:
    """model_card.md and model_card.html in out_dir, built from the run's evaluation."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    heading = title(context)
    sections = card_sections(evaluation, context, plots)
    md_path, html_path = out_dir / "model_card.md", out_dir / "model_card.html"
    md_path.write_text(render_markdown(heading, sections, out_dir), encoding="utf-8")
    html_path.write_text(render_html(heading, sections, out_dir), encoding="utf-8")
    return md_path, html_path

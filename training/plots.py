"""Evaluation plots as PNG files: calibration, capacity, score distribution, feature contributions.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so writing them changes no
global backend and needs no display; matplotlib is imported only when plots are written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from training.evaluation import Evaluation, ScoreSet, capacity_curve
from training.fit import PRIMARY_MODEL

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TOP_FEATURES = 20
DPI = 120
SCORE_BINS = np.linspace(0.0, 1.0, 21)


def primary_model(names: list[str]) -> str | None:
    """The model the single-model views show: lightgbm if present, else the first."""
    if PRIMARY_MODEL in names:
        return PRIMARY_MODEL
    return names[0] if names else None


def _figure(width: float, height: float) -> Figure:
    """A figure bound to the Agg canvas (no pyplot state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _percent_axis(axis, decimals: int = 0) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")


def _labelled(test: pd.DataFrame) -> np.ndarray:
    collected = test["collected"].to_numpy(dtype="float64", na_value=np.nan)
    recovered = pd.to_numeric(test["recovered_amount"]).to_numpy(dtype="float64", na_value=np.nan)
    return np.isfinite(collected) & np.isfinite(recovered)


def _score_histogram(ax: Axes, scores: dict[str, ScoreSet], rows: np.ndarray) -> None:
    """Step histograms of each model's scores, counts on a log scale when there are any."""
    from matplotlib.ticker import LogLocator, NullFormatter

    drawn = 0
    for name, score in scores.items():
        probability = score.probability[rows]
        probability = probability[np.isfinite(probability)]
        ax.hist(probability, bins=SCORE_BINS, histtype="step", label=name)
        drawn += probability.size
    ax.set(xlabel="Predicted probability of collection", ylabel="Balances")
    _percent_axis(ax.xaxis)
    if drawn == 0:
        _no_data(ax, "no scores")
        return
    ax.set(yscale="log", ylabel="Balances (log)")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(loc="upper right", fontsize="small")


def calibration_figure(
    evaluation: Evaluation, scores: dict[str, ScoreSet], rows: np.ndarray
) -> Figure:
    """Reliability diagram of every model over a histogram of its scores."""
    figure = _figure(7.0, 7.5)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, table in evaluation.reliability.groupby("model", sort=False):
        filled = table[table["n"] > 0]
        ece = evaluation.metrics.get(name, {}).get("ece", float("nan"))
        label = f"{name} (ECE {ece:.3f})"
        top.plot(filled["mean_score"], filled["observed_rate"], marker="o", label=label)
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="Observed collection rate per score bin")
    top.set_title("Calibration: predicted probability vs observed collection rate")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    _percent_axis(top.yaxis)
    _score_histogram(bottom, scores, rows)
    return figure


def capacity_figure(evaluation: Evaluation, test: pd.DataFrame, rows: np.ndarray) -> Figure:
    """Share of recovered dollars found when working the top k% by expected recovery."""
    figure = _figure(7.0, 5.5)
    ax = figure.subplots()
    recovered = pd.to_numeric(test["recovered_amount"]).to_numpy(dtype="float64")[rows]
    hindsight = capacity_curve(recovered, recovered)
    ax.plot([0, 100], [0, 1], linestyle="--", color="grey", label="random order")
    ax.plot(
        np.r_[0, hindsight["k_percent"]],
        np.r_[0, hindsight["share_of_recovered_dollars"]],
        linestyle=":",
        color="black",
        label="perfect hindsight (ceiling)",
    )
    for name, curve in evaluation.capacity.groupby("model", sort=False):
        ax.plot(
            np.r_[0, curve["k_percent"]], np.r_[0, curve["share_of_recovered_dollars"]], label=name
        )
    for k in (10, 20):
        ax.axvline(k, color="lightgrey", linewidth=0.8, zorder=0)
    ax.set(xlim=(0, 100), ylim=(0, 1.02))
    ax.set_xlabel("Balances worked, top k% by expected recovery")
    ax.set_ylabel("Share of recovered dollars captured")
    ax.set_title("Capacity: recovered dollars captured by working the top k%")
    _percent_axis(ax.yaxis)
    ax.xaxis.set_major_formatter(lambda value, _: f"{value:.0f}%")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return figure


def score_distribution_figure(
    test: pd.DataFrame, scores: dict[str, ScoreSet], rows: np.ndarray
) -> Figure:
    """Distribution of the primary model's probability for collected and not collected balances."""
    figure = _figure(7.0, 5.0)
    ax = figure.subplots()
    name = primary_model(list(scores))
    collected = test["collected"].to_numpy(dtype="float64", na_value=np.nan)[rows]
    probability = scores[name].probability[rows] if name else np.full(collected.shape, np.nan)
    outcomes = ((1.0, "collected", "tab:green"), (0.0, "not collected", "tab:red"))
    for outcome, label, color in outcomes:
        values = probability[(collected == outcome) & np.isfinite(probability)]
        if values.size:
            label = f"{label} (n={values.size:,})"
            ax.hist(values, bins=SCORE_BINS, density=True, alpha=0.3, color=color)
            ax.hist(
                values, bins=SCORE_BINS, density=True, histtype="step", color=color, label=label
            )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    else:
        _no_data(ax, "no scored balances with an outcome")
    ax.set_xlim(0, 1)
    ax.set_xlabel("Predicted probability of collection")
    ax.set_ylabel("Density")
    ax.set_title(f"Score distribution by outcome ({name or 'no model'})")
    _percent_axis(ax.xaxis)
    return figure


def feature_contributions_figure(contributions_mean_abs: pd.Series) -> Figure:
    """Horizontal bars of the features with the largest mean |SHAP| contribution."""
    top = pd.to_numeric(contributions_mean_abs, errors="coerce").dropna()
    top = top.sort_values(ascending=False, kind="stable").head(TOP_FEATURES)
    figure = _figure(7.0, max(3.0, 0.32 * len(top) + 1.5))
    ax = figure.subplots()
    if top.empty:
        _no_data(ax, "no feature contributions given")
    else:
        ax.barh([str(name) for name in top.index[::-1]], top.to_numpy()[::-1], color="tab:blue")
    ax.set_xlabel("Mean |SHAP value| (contribution to the score)")
    ax.set_title(f"Top {len(top)} feature contributions" if len(top) else "Feature contributions")
    ax.grid(axis="x", alpha=0.3)
    return figure


def write_plots(
    evaluation: Evaluation,
    test: pd.DataFrame,
    scores: dict[str, ScoreSet],
    contributions_mean_abs: pd.Series,
    out_dir: Path,
) -> list[Path]:
    """calibration.png, capacity.png, score_distribution.png and feature_contributions.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _labelled(test)
    figures = {
        "calibration.png": calibration_figure(evaluation, scores, rows),
        "capacity.png": capacity_figure(evaluation, test, rows),
        "score_distribution.png": score_distribution_figure(test, scores, rows),
        "feature_contributions.png": feature_contributions_figure(contributions_mean_abs),
    }
    paths = []
    for file_name, figure in figures.items():
        path = out_dir / file_name
        figure.savefig(path, format="png")
        paths.append(path)
    return paths

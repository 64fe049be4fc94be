"""One training run, end to end: snapshots, split, fit, evaluate, report, register.

``train`` takes a validated history (snapshots are built from it) or a labelled snapshot frame,
and returns where everything went. Long steps report to an optional ``rich`` progress display.
The wall clock is read by the caller: ``created_at`` is passed in.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress, TaskID

from features.errors import ArscoreError
from features.history import History
from features.model import CollectibilityModel
from features.snapshots import LabelConfig, build_snapshots, snapshot_calendar
from training import registry
from training.config import TrainingConfig, dump_config
from training.evaluation import Evaluation, ScoreSet, evaluate
from training.fit import PRIMARY_MODEL, BoosterFitter, FittedModels, fit_models
from training.model_card import write_model_card
from training.plots import write_plots
from training.split import Split, time_split

MODEL_DIR_NAME = "collectibility_model"
REPORT_DIR_NAME = "report"
FREQUENCY_WORDS = {"ME": "month ends", "MS": "month starts", "W": "weekly", "D": "daily"}
FIT_STEPS = ("feature pipeline", "classifier", "calibration", "recovery model", "baselines")
RECOVERY_MODEL_TEXT = (
    "Expected recovery = collectible balance x a second LightGBM booster's expected recovered "
    "fraction. The booster is trained with the cross-entropy objective on recovered_fraction "
    "(payments within the horizon over the collectible balance, in [0, 1]), so it estimates "
    "E[fraction | features] directly, partial payments and payment plans included. Multiplying "
    "the collection probability by the balance instead would count a balance collected at "
    "50% as fully recovered and ignore partial payments below the threshold."
)


@dataclass(frozen=True)
class TrainingResult:
    """Where a training run went and how it scored on the test window."""

    run_id: str
    version: str
    model_uri: str
    tracking_uri: str
    artifact_sha256: str
    model_dir: Path
    report_dir: Path
    model_card: tuple[Path, Path]
    plots: list[Path]
    metrics: dict[str, dict[str, float]]
    split_summary: pd.DataFrame
    test_scores: pd.DataFrame
    fit_report: dict[str, Any] = field(default_factory=dict)


class Steps:
    """Named progress bars on an optional rich Progress (no display when it is None)."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def start(self, name: str, total: int) -> None:
        if self.progress is not None:
            self.tasks[name] = self.progress.add_task(name, total=total)

    def advance(self, name: str, amount: int = 1, detail: str | None = None) -> None:
        if self.progress is not None and name in self.tasks:
            description = f"{name}: {detail}" if detail else name
            self.progress.update(self.tasks[name], advance=amount, description=description)

    def finish(self, name: str) -> None:
        if self.progress is not None and name in self.tasks:
            task = self.tasks[name]
            self.progress.update(task, completed=self.progress.tasks[task].total, description=name)


def current_git_commit(directory: Path | None = None) -> str | None:
    """The commit checked out in ``directory`` (read-only ``git rev-parse``), None if unknown."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def snapshot_dates(
    history: History, config: TrainingConfig
) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """The as-of dates training snapshots are taken on (after the warm-up) and the data end."""
    data_end = pd.Timestamp(history.transactions["date"].max())
    start = pd.Timestamp(history.claims["billed_date"].min()) + pd.Timedelta(
        days=config.warmup_days
    )
    dates = snapshot_calendar(start, data_end, config.snapshot_freq)
    if not dates:
        raise ArscoreError(f"the history ends ({data_end.date()}) before the warm-up is over")
    return dates, data_end


def snapshots_from_history(history: History, config: TrainingConfig, steps: Steps) -> pd.DataFrame:
    """Labelled monthly snapshots from the first as-of date after the warm-up to the data end."""
    dates, data_end = snapshot_dates(history, config)
    steps.start("snapshots", len(dates))
    return build_snapshots(
        history,
        dates,
        LabelConfig(config.horizon_days, config.collected_threshold),
        data_end=data_end,
        progress=lambda n: steps.advance("snapshots", n),
    )


def check_snapshots(snapshots: pd.DataFrame, config: TrainingConfig) -> pd.DataFrame:
    """The snapshot rows, checked for label columns built with the configured threshold."""
    needed = ("as_of", "claim_id", "billed_date", "collected", "censored", "recovered_fraction")
    missing = [c for c in needed if c not in snapshots.columns]
    if missing:
        raise ArscoreError("the snapshots lack column(s) " + ", ".join(missing))
    known = snapshots["collected"].notna().to_numpy()
    fraction = snapshots["recovered_fraction"].to_numpy(dtype=np.float64, na_value=np.nan)[known]
    collected = snapshots["collected"].to_numpy(dtype=np.float64, na_value=np.nan)[known]
    if np.any((fraction >= config.collected_threshold) != (collected == 1.0)):
        raise ArscoreError(
            "the snapshots' collected labels were built with another collected_threshold than "
            f"{config.collected_threshold}; rebuild them or change the config"
        )
    return snapshots


def after_warmup(snapshots: pd.DataFrame, config: TrainingConfig) -> pd.DataFrame:
    """Rows dated at least ``warmup_days`` after the first billing seen in a snapshot table
    (early as-of dates lack old balances and the patients' prior history)."""
    start = snapshots["billed_date"].min() + pd.Timedelta(days=config.warmup_days)
    return snapshots[(snapshots["as_of"] >= start).to_numpy()]


def fingerprint_test_rows(test: pd.DataFrame) -> str:
    """A short hash of the test rows and labels: equal windows on other data differ here."""
    columns = ["claim_id", "as_of", "collected", "recovered_amount"]
    rows = test[columns].sort_values(["as_of", "claim_id"], kind="stable")
    return hashlib.sha256(rows.to_csv(index=False).encode("utf-8")).hexdigest()[:16]


def mean_abs_contributions(
    model: CollectibilityModel, test: pd.DataFrame, sample: int, seed: int
) -> pd.Series:
    """Mean |TreeSHAP contribution| per feature on a sample of test rows (exact reasons are
    ~100x a prediction, so a sample of a few thousand rows suffices for the ranking)."""
    rows = test
    if len(test) > sample:
        rows = test.iloc[np.random.default_rng(seed).choice(len(test), sample, replace=False)]
    contributions = model.contributions(model.features(rows))[:, :-1]
    means = np.abs(contributions).mean(axis=0)
    return pd.Series(means, index=model.pipeline.feature_names_).sort_values(ascending=False)


def model_metadata(
    config: TrainingConfig, split: Split, created_at: datetime, git_commit: str | None
) -> dict[str, Any]:
    """Label definition, windows and provenance recorded inside the saved model."""
    return {
        "model_name": config.model_name,
        "label": label_text(config),
        "horizon_days": config.horizon_days,
        "collected_threshold": config.collected_threshold,
        "snapshot_freq": config.snapshot_freq,
        "train_end": split.cutoffs.train_end.date().isoformat(),
        "valid_end": split.cutoffs.valid_end.date().isoformat(),
        "windows": {name: list(split.window(name)) for name in ("train", "validation", "test")},
        "git_commit": git_commit,
        "created_at": created_at.isoformat(),
    }


def label_text(config: TrainingConfig) -> str:
    """The label definition in words."""
    return (
        f"collected = payments in (as_of, as_of + {config.horizon_days} days] reach at least "
        f"{config.collected_threshold:.0%} of the collectible balance at the as-of date "
        "(open balance, capped at the expected amount still due while a claim awaits "
        "adjudication). Snapshots whose horizon runs past the data end are censored, not negative."
    )


def card_context(
    config: TrainingConfig,
    split: Split,
    fitted: FittedModels,
    contributions: pd.Series,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """What the model card says about this run."""
    windows = {name: split.window(name) for name in ("train", "validation", "test")}
    summary = split.summary()
    split_text = (
        "By as-of date; censored rows dropped; a row is kept only if its label window closes "
        "on or before the first as-of date of the next split (no label leaks across splits). "
        + "; ".join(
            f"{row.split} {row.first_as_of}..{row.last_as_of}: {row.rows:,} balances, "
            f"{row.collected_rate:.1%} collected"
            for row in summary.itertuples()
        )
    )
    calibration = fitted.report["calibration"]
    return {
        "model_name": config.model_name,
        "model_version": provenance.get("model_version"),
        "data_window": f"as-of dates {windows['train'][0]} to {windows['test'][1]} "
        f"({FREQUENCY_WORDS.get(config.snapshot_freq, config.snapshot_freq)}), "
        f"label horizon {config.horizon_days} days",
        "label": label_text(config),
        "split": split_text,
        "recovery_model": RECOVERY_MODEL_TEXT,
        "features": {
            name: f"mean |contribution| {value:.4f}" for name, value in contributions.items()
        },
        "calibration": f"{calibration['chosen']} (cross-fitted validation log loss: "
        + ", ".join(
            f"{k} {v['log_loss']:.4f}" for k, v in calibration.items() if isinstance(v, dict)
        )
        + ")",
        "boosting_rounds": f"classifier {fitted.report['classifier_iterations']}, "
        f"recovery {fitted.report['recovery_iterations']} (early stopping on validation)",
        **{k: v for k, v in provenance.items() if k != "model_version"},
    }


def version_tags(
    config: TrainingConfig, split: Split, evaluation: Evaluation, git_commit: str | None
) -> dict[str, str]:
    """Registry tags: the test window and fingerprint, key test metrics, provenance."""
    first, last = split.window("test")
    primary = evaluation.metrics[PRIMARY_MODEL]
    tags = {
        registry.TAG_TEST_START: first,
        registry.TAG_TEST_END: last,
        registry.TAG_TEST_FINGERPRINT: fingerprint_test_rows(split.test),
        "horizon_days": str(config.horizon_days),
        "collected_threshold": str(config.collected_threshold),
        "git_commit": git_commit or "unknown",
    }
    for metric in ("roc_auc", "dollars_share_top20", "ece", "brier", "log_loss"):
        tags[f"test_{metric}"] = repr(float(primary[metric]))
    return tags


def train(
    source: History | pd.DataFrame,
    config: TrainingConfig,
    out_dir: Path,
    *,
    created_at: datetime,
    git_commit: str | None = None,
    run_name: str | None = None,
    progress: Progress | None = None,
    booster_fitter: BoosterFitter | None = None,
) -> TrainingResult:
    """Build snapshots (from a history), split, fit, evaluate, write reports, register."""
    steps = Steps(progress)
    out_dir = Path(out_dir)
    if isinstance(source, History):
        snapshots = check_snapshots(snapshots_from_history(source, config, steps), config)
    else:
        snapshots = after_warmup(check_snapshots(source, config), config)
    split = time_split(
        snapshots,
        config.horizon_days,
        config.train_end,
        config.valid_end,
        config.test_periods,
        config.valid_periods,
    )
    steps.start("fitting", len(FIT_STEPS))
    metadata = model_metadata(config, split, created_at, git_commit)
    fitted = fit_models(
        split,
        config,
        metadata,
        step=lambda name: steps.advance("fitting", 0, name),
        booster_fitter=booster_fitter,
    )
    steps.finish("fitting")

    steps.start("evaluation", 3)
    scores = {name: ScoreSet(*pair) for name, pair in fitted.scores(split.test).items()}
    evaluation = evaluate(split.test, scores)
    steps.advance("evaluation", detail="exact reasons on a sample")
    contributions = mean_abs_contributions(
        fitted.model, split.test, config.contribution_sample, config.seed
    )
    model_dir = out_dir / MODEL_DIR_NAME
    fitted.model.save(model_dir)
    steps.advance("evaluation", detail="registering")
    example = split.test.iloc[:5][fitted.model.input_columns].reset_index(drop=True)
    registered = registry.log_training_run(
        model_name=config.model_name,
        experiment=config.experiment,
        run_name=run_name or out_dir.name,
        params=config.flat_params(),
        config_yaml=dump_config(config),
        metrics={**evaluation.to_flat_metrics("test"), **_fit_metrics(fitted)},
        model_dir=model_dir,
        version_tags=version_tags(config, split, evaluation, git_commit),
        input_example=example,
        output_example=fitted.model.score(example).reset_index(drop=True),
    )
    steps.advance("evaluation", detail="plots and model card")
    report_dir = out_dir / REPORT_DIR_NAME
    plots = write_plots(evaluation, split.test, scores, contributions, report_dir)
    provenance = {
        "model_version": registered.version,
        "run_id": registered.run_id,
        "artifact_sha256": registered.artifact_sha256,
        "git_commit": git_commit or "unknown",
        "created_at": created_at.isoformat(),
    }
    card = write_model_card(
        evaluation,
        card_context(config, split, fitted, contributions, provenance),
        plots,
        report_dir,
    )
    registry.log_reports(registered.run_id, report_dir)
    steps.finish("evaluation")
    return TrainingResult(
        run_id=registered.run_id,
        version=registered.version,
        model_uri=registered.model_uri,
        tracking_uri=registered.tracking_uri,
        artifact_sha256=registered.artifact_sha256,
        model_dir=model_dir,
        report_dir=report_dir,
        model_card=card,
        plots=plots,
        metrics=evaluation.metrics,
        split_summary=split.summary(),
        test_scores=fitted.model.score(split.test).assign(as_of=split.test["as_of"]),
        fit_report=fitted.report,
    )


def _fit_metrics(fitted: FittedModels) -> dict[str, float]:
    calibration = fitted.report["calibration"]
    metrics = {
        "classifier_iterations": float(fitted.report["classifier_iterations"]),
        "recovery_iterations": float(fitted.report["recovery_iterations"]),
    }
    for name, values in calibration.items():
        if isinstance(values, dict):
            metrics[f"validation_{name}_log_loss"] = values["log_loss"]
            metrics[f"validation_{name}_brier"] = values["brier"]
    return metrics

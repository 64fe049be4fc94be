"""One cash forecast training run: rolling-origin backtest, final fit, intervals, registry.

The backtest's forecasts at every rolling origin are the errors the intervals are calibrated on
(``intervals.calibrate``), and its figures at the monthly origins are the version's test
metrics. The final model is fitted on every training snapshot whose 13 weeks have passed by the
end of the data. The wall clock is read by the caller: ``created_at`` is passed in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from features.cash_model import CashForecastModel
from features.cash_pyfunc import CASH_MODEL_ARTIFACT_KEY, CashForecastPyfunc, account_forecast
from features.history import History
from training import registry
from training.forecast.backtest import BacktestResult, evaluate_run
from training.forecast.card import write_forecast_card
from training.forecast.config import ForecastConfig, dump_forecast_config
from training.forecast.fit import fit_cash_model
from training.forecast.intervals import calibrate
from training.forecast.rolling import run_rolling

MODEL_DIR_NAME = "cash_forecast_model"
REPORT_DIR_NAME = "report"
KEY_METRICS = {
    "wape_model": ("WAPE weeks 1-13", "lower"),
    "coverage_gap_80": ("|coverage - 80%|", "lower"),
    "coverage_gap_95": ("|coverage - 95%|", "lower"),
}


@dataclass(frozen=True)
class ForecastTrainingResult:
    """Where a cash forecast training went and its backtest."""

    version: str
    run_id: str
    tracking_uri: str
    artifact_sha256: str
    model_dir: Path
    model_card: tuple[Path, Path]
    backtest: BacktestResult


def fingerprint(backtest: BacktestResult) -> str:
    """A short hash of the actual totals at the evaluation origins (other data differs here)."""
    rows = backtest.forecasts[["origin", "week", "actual"]].round({"actual": 2})
    return hashlib.sha256(rows.to_csv(index=False).encode("utf-8")).hexdigest()[:16]


def version_tags(backtest: BacktestResult, git_commit: str | None) -> dict[str, str]:
    """Registry tags: the backtest window, its fingerprint, the key metrics and their spec."""
    summary = backtest.summary
    origins = backtest.run.calendar.evaluation
    metrics = {
        "wape_model": summary["wape_model"],
        "coverage_gap_80": abs(summary["coverage_80"] - 0.80),
        "coverage_gap_95": abs(summary["coverage_95"] - 0.95),
    }
    return {
        registry.TAG_TEST_START: str(origins[0].date()),
        registry.TAG_TEST_END: str(origins[-1].date()),
        registry.TAG_TEST_FINGERPRINT: fingerprint(backtest),
        registry.TAG_KEY_METRICS: json.dumps({k: list(v) for k, v in KEY_METRICS.items()}),
        "git_commit": git_commit or "unknown",
        **{f"test_{name}": repr(float(value)) for name, value in metrics.items()},
    }


def final_model(
    backtest: BacktestResult, config: ForecastConfig, metadata: dict[str, Any]
) -> tuple[CashForecastModel, dict[str, Any]]:
    """The model fitted on everything closed by the data end, with intervals calibrated on
    every rolling origin's errors."""
    run = backtest.run
    cutoff = run.calendar.data_end
    model, report = fit_cash_model(run.panel, cutoff, config, metadata)
    model.intervals = calibrate(run.records, cutoff, config.horizon_weeks, config.score_floor)
    return model, report


def train_forecast(
    history: History,
    config: ForecastConfig,
    out_dir: Path,
    *,
    created_at: datetime,
    git_commit: str | None = None,
    run_name: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ForecastTrainingResult:
    """Backtest, fit, calibrate, save, register as @challenger, write the model card."""
    out_dir = Path(out_dir)
    backtest = evaluate_run(run_rolling(history, config, progress=progress), config)
    metadata = {
        "model_name": config.model_name,
        "created_at": created_at.isoformat(),
        "git_commit": git_commit,
        "data_end": str(backtest.run.calendar.data_end.date()),
        "backtest_summary": backtest.summary,
    }
    model, fit_report = final_model(backtest, config, metadata)
    model_dir = out_dir / MODEL_DIR_NAME
    model.save(model_dir)
    example = backtest.run.panel.snapshots.iloc[:3].reset_index(drop=True)
    columns = ["claim_id", "as_of", "open_balance", *model.pipeline.feature_names_]
    example = example[list(dict.fromkeys(columns))]
    registered = registry.log_training_run(
        model_name=config.model_name,
        experiment=config.experiment,
        run_name=run_name or out_dir.name,
        params=config.flat_params(),
        config_yaml=dump_forecast_config(config),
        metrics={f"backtest_{k}": v for k, v in backtest.summary.items()},
        model_dir=model_dir,
        version_tags=version_tags(backtest, git_commit),
        input_example=example,
        output_example=account_forecast(model, example),
        python_model=CashForecastPyfunc(),
        artifact_key=CASH_MODEL_ARTIFACT_KEY,
    )
    context = {
        "model_name": config.model_name,
        "model_version": registered.version,
        "formulation": config.formulation,
        "data_end": metadata["data_end"],
        "evaluation_origins": f"{backtest.run.calendar.evaluation[0].date()} to "
        f"{backtest.run.calendar.evaluation[-1].date()} (month ends)",
        "calibration": model.intervals.calibration,
        "final_fit": fit_report,
        "artifact_sha256": registered.artifact_sha256,
        "git_commit": git_commit or "unknown",
        "created_at": created_at.isoformat(),
    }
    card = write_forecast_card(
        backtest.table, backtest.sides, backtest.summary, context, out_dir / REPORT_DIR_NAME
    )
    registry.log_reports(registered.run_id, out_dir / REPORT_DIR_NAME)
    return ForecastTrainingResult(
        version=registered.version,
        run_id=registered.run_id,
        tracking_uri=registered.tracking_uri,
        artifact_sha256=registered.artifact_sha256,
        model_dir=model_dir,
        model_card=card,
        backtest=backtest,
    )

"""Training on a Dask cluster: the run of ``training.train.train``, boosters fitted with
``lightgbm.dask``.

Everything but the booster fit is the single-machine code: the same config, snapshots (built on
the cluster, partitioned by patient, equal row for row), split, feature pipeline, calibration,
baselines, evaluation, model card and registry entry. The classifier and the recovery model are
fitted by LightGBM's data-parallel learner over the cluster's workers
(``DaskLGBMClassifier`` / ``DaskLGBMRegressor``, cross-entropy objective). LightGBM's Dask
interface does not early-stop, so the fit runs ``num_boost_round`` rounds and the best iteration
is then found exactly as early stopping finds it (validation log loss after every round,
patience ``early_stopping_rounds``), and the booster is trimmed to it. The result is the same
kind of registered model as single-machine training.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from features.errors import ArscoreError
from features.history import History
from features.patient_partitions import (
    DEFAULT_CLAIMS_PER_PARTITION,
    build_snapshots_partitioned,
    cluster_client,
    partition_count,
    worker_count,
)
from features.pipeline import FeaturePipeline
from features.snapshots import LabelConfig, snapshot_calendar
from training import fit as fit_module
from training.config import LightGBMParams, TrainingConfig
from training.train import TrainingResult, train

LOG_LOSS_EPSILON = 1e-15


def validation_losses(booster: lightgbm.Booster, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Validation log loss after each boosting round (binary and cross-entropy alike)."""
    margin = np.zeros(len(y), dtype=np.float64)
    losses = np.empty(booster.num_trees(), dtype=np.float64)
    for iteration in range(booster.num_trees()):
        margin += booster.predict(X, start_iteration=iteration, num_iteration=1, raw_score=True)
        p = np.clip(0.5 * (1.0 + np.tanh(0.5 * margin)), LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
        losses[iteration] = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))
    return losses


def best_iteration(losses: np.ndarray, patience: int) -> int:
    """The 1-based round early stopping keeps: the best loss until ``patience`` rounds pass
    without a strict improvement."""
    best, best_at = math.inf, 0
    for iteration, loss in enumerate(losses):
        if loss < best:
            best, best_at = float(loss), iteration
        elif iteration - best_at >= patience:
            break
    return best_at + 1


class DaskBoosterFitter:
    """``training.fit.fit_booster`` with the fit on a Dask cluster (same signature and result)."""

    def __init__(self, client: Any):
        self.client = client

    def _distributed(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        import dask.array as da

        rows = max(1, math.ceil(len(y) / worker_count(self.client)))
        X_parts = da.from_array(X, chunks=(rows, X.shape[1]))
        y_parts = da.from_array(y, chunks=(rows,))
        return self.client.persist([X_parts, y_parts])

    def __call__(
        self,
        X_train: np.ndarray,
        y_train: np.ndarray,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        pipeline: FeaturePipeline,
        params: LightGBMParams,
        objective: str,
        seed: int,
    ) -> tuple[lightgbm.Booster, int]:
        from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

        settings = params.booster_params(objective, seed)
        settings.pop("num_threads", None)
        estimator_type = DaskLGBMClassifier if objective == "binary" else DaskLGBMRegressor
        estimator = estimator_type(
            client=self.client, n_estimators=params.num_boost_round, **settings
        )
        X, y = self._distributed(X_train, y_train)
        estimator.fit(
            X,
            y,
            feature_name=list(pipeline.feature_names_),
            categorical_feature=list(pipeline.categorical_indices_),
        )
        booster = estimator.booster_
        losses = validation_losses(booster, X_valid, np.asarray(y_valid, dtype=np.float64))
        best = best_iteration(losses, params.early_stopping_rounds)
        return lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best)), best


@contextmanager
def boosters_fitted_on(client: Any) -> Iterator[None]:
    """Within the block, ``training.fit`` fits its boosters on the cluster.

    Stopgap for a ``training.train.train`` without the ``booster_fitter`` argument: swaps the
    module's ``fit_booster`` (one training run per process at a time).
    """
    original = fit_module.fit_booster
    fit_module.fit_booster = DaskBoosterFitter(client)  # type: ignore[assignment]
    try:
        yield
    finally:
        fit_module.fit_booster = original


def snapshots_on_cluster(
    client: Any, history: History, config: TrainingConfig, claims_per_partition: int
) -> pd.DataFrame:
    """The labelled snapshots ``train`` builds from a history, built on the cluster."""
    data_end = pd.Timestamp(history.transactions["date"].max())
    start = pd.Timestamp(history.claims["billed_date"].min()) + pd.Timedelta(
        days=config.warmup_days
    )
    dates = snapshot_calendar(start, data_end, config.snapshot_freq)
    if not dates:
        raise ArscoreError(f"the history ends ({data_end.date()}) before the warm-up is over")
    n_partitions = max(partition_count(history, claims_per_partition), 2 * worker_count(client))
    labels = LabelConfig(config.horizon_days, config.collected_threshold)
    return build_snapshots_partitioned(history, dates, labels, data_end, n_partitions, client)


def train_on_cluster(
    source: History | pd.DataFrame,
    config: TrainingConfig,
    out_dir: Path,
    *,
    cluster: str,
    created_at: datetime,
    claims_per_partition: int = DEFAULT_CLAIMS_PER_PARTITION,
    **options: Any,
) -> TrainingResult:
    """``training.train.train`` with snapshots and boosters computed on a Dask cluster
    (``cluster``: a scheduler address or ``local:N``); other options are passed through."""
    with cluster_client(cluster) as client:
        if isinstance(source, History):
            source = snapshots_on_cluster(client, source, config, claims_per_partition)
        if "booster_fitter" in inspect.signature(train).parameters:
            fitter = DaskBoosterFitter(client)
            return train(
                source, config, out_dir, created_at=created_at, booster_fitter=fitter, **options
            )
        with boosters_fitted_on(client):
            return train(source, config, out_dir, created_at=created_at, **options)

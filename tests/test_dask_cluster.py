"""Scale-out on Dask: partitioned snapshots, scores and training equal the single-machine path.

One LocalCluster of two worker processes serves the module (LightGBM's distributed learner needs
one process per worker).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from features.errors import ArscoreError
from features.patient_partitions import (
    build_snapshots_partitioned,
    cluster_address,
    iter_partitions,
    local_workers,
    partition_history,
    partition_of,
)
from features.snapshots import build_snapshots
from serving.batch.dask_scoring import score_frames_on_cluster, score_partitions_on_cluster
from serving.batch.files import split_rows
from serving.batch.parallel import open_balance_chunks
from serving.batch.scorer import ChunkScorer, PolicyActions
from serving.policy.config import load_policy
from serving.policy.facts import policy_columns
from tests.model_factory import AS_OF, labelled_snapshots, open_balances, small_history, small_model

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as dask_client,
    ):
        yield dask_client


def make_scorer() -> ChunkScorer:
    return ChunkScorer(
        model=small_model(),
        model_version="1",
        actions=PolicyActions(load_policy()),
        policy_columns=policy_columns(),
    )


def by_claim(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values(["as_of", "claim_id"], ignore_index=True)


def test_partition_of_same_patient_same_partition_in_every_call():
    keys = pd.Series(["pk_a", "pk_b", "pk_a", "pk_c", "pk_b"], dtype="string")
    parts = partition_of(keys, 4)
    assert parts[0] == parts[2] and parts[1] == parts[4]
    assert (parts == partition_of(keys.iloc[::-1], 4)[::-1]).all()


def test_partition_history_keeps_each_patients_claims_and_transactions_together():
    history = small_history()
    parts = partition_history(history, 5)
    patients = [set(part.claims["patient_key"]) for part in parts]
    assert sum(len(p) for p in patients) == history.claims["patient_key"].nunique()
    assert sum(len(part.transactions) for part in parts) == len(history.transactions)
    for part in parts:
        assert part.transactions["claim_id"].isin(part.claims["claim_id"]).all()


def test_partitioned_snapshots_equal_single_machine_exactly():
    history = small_history()
    dates = [pd.Timestamp("2026-03-31"), AS_OF]
    whole = build_snapshots(history, dates)
    parted = build_snapshots_partitioned(history, dates, n_partitions=7)
    pd.testing.assert_frame_equal(parted, whole, check_exact=True)


def test_local_workers_bad_count_is_refused():
    assert local_workers("local:3") == 3
    assert local_workers("tcp://10.0.0.5:8786") is None
    with pytest.raises(ArscoreError, match="local:N"):
        local_workers("local:zero")


def test_cluster_address_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("ARSCORE_DASK_SCHEDULER", "tcp://scheduler:8786")
    assert cluster_address(None) == "tcp://scheduler:8786"
    assert cluster_address("local:2") == "local:2"


def test_snapshots_on_cluster_equal_single_machine_row_for_row(client):
    history = small_history()
    dates = [pd.Timestamp("2026-01-31"), AS_OF]
    whole = build_snapshots(history, dates)
    on_cluster = build_snapshots_partitioned(history, dates, n_partitions=4, client=client)
    pd.testing.assert_frame_equal(on_cluster, whole, check_exact=False, rtol=1e-12)


def test_scores_on_cluster_equal_single_machine_row_for_row(client):
    history, scorer = small_history(), make_scorer()
    local = by_claim(
        pa.concat_tables(scorer.score(c) for c in split_rows(open_balances(history), 300))
    )
    parts = iter_partitions(history, 4)
    from_history = score_partitions_on_cluster(client, scorer, parts, AS_OF, 300, window=4)
    frames = open_balance_chunks(history, AS_OF, 3, 250)
    from_snapshots = score_frames_on_cluster(client, scorer, frames, window=4)
    for remote in (
        by_claim(pa.concat_tables(from_history)),
        by_claim(pa.concat_tables(from_snapshots)),
    ):
        assert remote["claim_id"].tolist() == local["claim_id"].tolist()
        assert remote["action"].tolist() == local["action"].tolist()
        assert remote["risk_band"].tolist() == local["risk_band"].tolist()
        for column in ("probability_collected", "expected_recovery"):
            np.testing.assert_allclose(remote[column], local[column], rtol=1e-12)


def test_score_command_on_cluster_equals_single_machine(client, tmp_path: Path, monkeypatch):
    import typer

    from arscore.commands_batch import register
    from serving.settings import get_settings

    monkeypatch.setenv("ARSCORE_DATABASE_URL", f"sqlite:///{tmp_path}/arscore.db")
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    snapshots = tmp_path / "snapshots.parquet"
    open_balances(small_history()).to_parquet(snapshots)
    small_model().save(tmp_path / "model")
    common = ["score", "--snapshots", str(snapshots), "--model", str(tmp_path / "model")]
    outs = {}
    for name, extra in (("local", []), ("cluster", ["--cluster", client.scheduler.address])):
        outs[name] = tmp_path / f"{name}.parquet"
        result = CliRunner().invoke(
            app, [*common, "--out", str(outs[name]), "--chunk-rows", "200", *extra]
        )
        assert result.exit_code == 0, result.output
    get_settings.cache_clear()
    local, remote = pd.read_parquet(outs["local"]), pd.read_parquet(outs["cluster"])
    pd.testing.assert_frame_equal(remote, local, check_exact=False, rtol=1e-12)


def test_train_on_cluster_registers_model_within_auc_of_single_machine(
    client, tmp_path: Path, monkeypatch
):
    from features.pipeline import FeaturePipeline
    from serving.scoring.loader import load_model
    from training.config import load_config
    from training.dask_fit import train_on_cluster
    from training.fit import choose_calibrator, fit_booster, outcomes
    from training.split import time_split

    monkeypatch.setenv("ARSCORE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("ARSCORE_PROMOTION_LOG", str(tmp_path / "promotions.jsonl"))
    rounds = {"num_boost_round": "60", "min_data_in_leaf": "50", "early_stopping_rounds": "10"}
    config = load_config(
        None, {"lightgbm": rounds, "recovery": rounds, "contribution_sample": "300"}
    )
    snapshots = labelled_snapshots(small_history(), months=18)
    result = train_on_cluster(
        snapshots,
        config,
        tmp_path / "run",
        cluster=client.scheduler.address,
        created_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
    )
    split = time_split(snapshots, config.horizon_days, test_periods=config.test_periods)
    pipeline = FeaturePipeline().fit(split.train)
    X = {name: pipeline.transform(frame) for name, frame in split.frames().items()}
    y = {name: outcomes(frame) for name, frame in split.frames().items()}
    booster, _ = fit_booster(
        X["train"],
        y["train"],
        X["validation"],
        y["validation"],
        pipeline,
        config.lightgbm,
        "binary",
        config.seed,
    )
    calibrator, _ = choose_calibrator(
        booster.predict(X["validation"]),
        y["validation"],
        config.calibration,
        config.calibration_folds,
        config.seed,
    )
    single_auc = roc_auc_score(y["test"], calibrator.transform(booster.predict(X["test"])))
    distributed_auc = result.metrics["lightgbm"]["roc_auc"]
    assert abs(distributed_auc - single_auc) <= 0.01
    loaded = load_model(
        f"models:/{config.model_name}/{result.version}", None, now=dt.datetime.now(dt.UTC)
    )
    assert loaded.sha256 == result.artifact_sha256
    assert loaded.model.booster.num_trees() == result.fit_report["classifier_iterations"]

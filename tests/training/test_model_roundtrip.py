"""The registered model, downloaded and loaded in a fresh process that imports only
features.model and mlflow, scores exactly as the model did in training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pandas as pd
import pytest

from features.model import CollectibilityModel, artifact_sha256
from training import registry
from training.split import time_split
from training.train import train

FRESH_PROCESS_SCORING = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import mlflow
    import pandas as pd

    from features.model import CollectibilityModel, artifact_sha256

    uri, rows_path, out_path, dst = sys.argv[1:5]
    mlflow.set_tracking_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts("models:/arscore@challenger", dst_path=dst))
    version = mlflow.MlflowClient().get_model_version_by_alias("arscore", "challenger")
    model_dir = local / version.tags["model_subdir"]
    model = CollectibilityModel.load(model_dir)
    model.score(pd.read_parquet(rows_path)).to_parquet(out_path)
    print(json.dumps({
        "sha256": artifact_sha256(model_dir),
        "tag_sha256": version.tags["artifact_sha256"],
        "imported": sorted(
            name for name in sys.modules
            if name.split(".")[0] in ("training", "arscore")
        ),
    }))
    """
)


@pytest.fixture(scope="module")
def trained(tiny_snapshots, tmp_path_factory):
    """One tiny training run registered in a temporary SQLite registry."""
    from training.config import load_config

    workdir = tmp_path_factory.mktemp("roundtrip")
    uri = f"sqlite:///{(workdir / 'registry' / 'mlflow.db').as_posix()}"
    config = load_config(
        overrides={
            "lightgbm": {"num_boost_round": 15, "num_leaves": 7, "min_data_in_leaf": 20},
            "recovery": {"num_boost_round": 15, "num_leaves": 7, "min_data_in_leaf": 20},
            "contribution_sample": 300,
        }
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARSCORE_MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(workdir)
        result = train(
            tiny_snapshots,
            config,
            workdir / "out",
            created_at=datetime(2026, 10, 1, tzinfo=UTC),
            git_commit="0" * 40,
        )
    test_rows = time_split(tiny_snapshots, config.horizon_days).test
    return uri, workdir, result, test_rows


def test_registered_model_in_fresh_process_scores_like_training(trained):
    uri, workdir, result, test_rows = trained
    rows_path, out_path = workdir / "rows.parquet", workdir / "scores.parquet"
    test_rows.to_parquet(rows_path)
    env = {k: v for k, v in os.environ.items() if not k.endswith("TRACKING_URI")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS_SCORING,
            uri,
            str(rows_path),
            str(out_path),
            str(workdir / "download"),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported"] == []
    assert report["sha256"] == report["tag_sha256"] == result.artifact_sha256
    fresh = pd.read_parquet(out_path).reset_index(drop=True)
    in_training = result.test_scores.reset_index(drop=True)
    pd.testing.assert_series_equal(fresh["claim_id"], in_training["claim_id"], check_dtype=False)
    for column in ("probability_collected", "expected_recovery"):
        pd.testing.assert_series_equal(fresh[column], in_training[column], rtol=0, atol=0)


def test_registered_version_tagged_and_aliased_challenger(trained):
    uri, _, result, _ = trained
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARSCORE_MLFLOW_TRACKING_URI", uri)
        version = registry.client().get_model_version_by_alias("arscore", "challenger")
    assert str(version.version) == result.version
    assert version.tags["artifact_sha256"] == artifact_sha256(result.model_dir)
    assert float(version.tags["test_roc_auc"]) == pytest.approx(
        result.metrics["lightgbm"]["roc_auc"]
    )
    assert version.tags["test_start"] <= version.tags["test_end"]
    assert version.tags["git_commit"] == "0" * 40


def test_pyfunc_model_predicts_the_same_scores(trained):
    import mlflow.pyfunc

    uri, _, result, test_rows = trained
    mlflow.set_tracking_uri(uri)
    pyfunc = mlflow.pyfunc.load_model("models:/arscore@challenger")
    model = CollectibilityModel.load(result.model_dir)
    predicted = pyfunc.predict(test_rows[model.input_columns].iloc[:50])
    expected = result.test_scores.iloc[:50].reset_index(drop=True)
    pd.testing.assert_series_equal(
        predicted["probability_collected"], expected["probability_collected"], rtol=0, atol=0
    )


def test_train_writes_model_card_plots_and_metadata(trained):
    _, _, result, _ = trained
    markdown, html = result.model_card
    assert markdown.exists() and html.exists()
    assert "Recovery model" in markdown.read_text()
    assert result.plots and all(p.exists() for p in result.plots)
    metadata = json.loads((result.model_dir / "metadata.json").read_text())
    assert metadata["horizon_days"] == 90 and metadata["collected_threshold"] == 0.5
    assert metadata["windows"]["test"][1] == str(result.test_scores["as_of"].max().date())
    assert metadata["created_at"] == "2026-10-01T00:00:00+00:00"

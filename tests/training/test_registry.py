"""The registry: where it lives, promotion rules and refusals, the promotion log, the listing."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from arscore import commands_models
from features.errors import ArscoreError
from training import registry

AT = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
WINDOW = {"test_start": "2026-04-30", "test_end": "2026-06-30", "test_fingerprint": "abc123"}


def register_version(roc_auc: float, share_top20: float, **window: str) -> str:
    """A registered version carrying the tags training writes (no model files needed)."""
    from mlflow.exceptions import MlflowException

    client = registry.client()
    with contextlib.suppress(MlflowException):
        client.create_registered_model("arscore")
    tags = {
        **WINDOW,
        **window,
        "test_roc_auc": repr(roc_auc),
        "test_dollars_share_top20": repr(share_top20),
        "test_ece": "0.01",
    }
    return str(client.create_model_version("arscore", "file:///nowhere", tags=tags).version)


def champion_version() -> str:
    return str(registry.client().get_model_version_by_alias("arscore", "champion").version)


def log_lines(uri: str) -> list[dict]:
    path = Path(uri.removeprefix("sqlite:///")).parent / "promotion_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_tracking_uri_without_environment_is_sqlite_under_models(tmp_path, monkeypatch):
    monkeypatch.delenv("ARSCORE_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ARSCORE_PROMOTION_LOG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert registry.tracking_uri() == f"sqlite:///{tmp_path.as_posix()}/models/mlflow.db"
    assert registry.promotion_log_path() == tmp_path / "models" / "promotion_log.jsonl"


def test_tracking_uri_arscore_variable_wins_over_mlflow_variable(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    monkeypatch.setenv("ARSCORE_MLFLOW_TRACKING_URI", "sqlite:////srv/registry/mlflow.db")
    assert registry.tracking_uri() == "sqlite:////srv/registry/mlflow.db"
    assert registry.promotion_log_path() == Path("/srv/registry/promotion_log.jsonl")
    monkeypatch.delenv("ARSCORE_MLFLOW_TRACKING_URI")
    assert registry.tracking_uri() == "http://mlflow.example:5000"


def test_promote_without_champion_sets_alias_and_logs_one_line(mlflow_registry):
    version = register_version(0.90, 0.95)
    record = registry.promote(version, "first model", user="ana", at=AT)
    assert champion_version() == version
    lines = log_lines(mlflow_registry)
    assert lines == [record]
    assert lines[0]["from_version"] is None and lines[0]["to_version"] == int(version)
    assert lines[0]["by"] == "ana" and lines[0]["at"] == "2026-10-01T09:30:00+00:00"
    assert lines[0]["forced"] is False


def test_promote_better_version_moves_champion_and_records_both_metrics(mlflow_registry):
    first = register_version(0.90, 0.95)
    registry.promote(first, "first", user="ana", at=AT)
    second = register_version(0.91, 0.96)
    record = registry.promote(second, "better on both", user="ben", at=AT)
    assert champion_version() == second
    assert record["from_version"] == int(first)
    assert record["metrics"]["from"]["roc_auc"] == pytest.approx(0.90)
    assert record["metrics"]["to"]["dollars_share_top20"] == pytest.approx(0.96)
    assert len(log_lines(mlflow_registry)) == 2


@pytest.mark.parametrize(("roc_auc", "share"), [(0.89, 0.97), (0.92, 0.94)])
def test_promote_worse_on_either_metric_refused_champion_and_log_unchanged(
    mlflow_registry, roc_auc, share
):
    first = register_version(0.90, 0.95)
    registry.promote(first, "first", user="ana", at=AT)
    worse = register_version(roc_auc, share)
    with pytest.raises(registry.PromotionRefused, match="below champion version.*--force"):
        registry.promote(worse, "try", user="ana", at=AT)
    assert champion_version() == first
    assert len(log_lines(mlflow_registry)) == 1


def test_promote_worse_with_force_moves_champion_and_logs_override(mlflow_registry):
    first = register_version(0.90, 0.95)
    registry.promote(first, "first", user="ana", at=AT)
    worse = register_version(0.85, 0.95)
    record = registry.promote(worse, "rollback drill", force=True, user="ana", at=AT)
    assert champion_version() == worse
    last = log_lines(mlflow_registry)[-1]
    assert last == record
    assert last["forced"] is True
    assert "ROC AUC 0.8500 is below" in last["overridden"][0]


def test_promote_other_test_window_refused_saying_windows_differ(mlflow_registry):
    first = register_version(0.90, 0.95)
    registry.promote(first, "first", user="ana", at=AT)
    later = register_version(0.99, 0.99, test_start="2026-07-31", test_end="2026-09-30")
    with pytest.raises(registry.PromotionRefused, match="test sets differ.*2026-07-31"):
        registry.promote(later, "newer data", user="ana", at=AT)
    record = registry.promote(later, "newer data", force=True, user="ana", at=AT)
    assert record["forced"] and "not comparable" in record["overridden"][0]


def test_promote_same_window_other_data_refused(mlflow_registry):
    first = register_version(0.90, 0.95)
    registry.promote(first, "first", user="ana", at=AT)
    other = register_version(0.95, 0.97, test_fingerprint="fff000")
    with pytest.raises(registry.PromotionRefused, match="test sets differ"):
        registry.promote(other, "regenerated history", user="ana", at=AT)


def test_promote_unknown_version_or_empty_reason_raises(mlflow_registry):
    version = register_version(0.90, 0.95)
    with pytest.raises(ArscoreError, match="no version 42"):
        registry.promote("42", "typo", user="ana", at=AT)
    with pytest.raises(ArscoreError, match="needs a reason"):
        registry.promote(version, "  ", user="ana", at=AT)
    registry.promote(version, "first", user="ana", at=AT)
    with pytest.raises(ArscoreError, match="already the champion"):
        registry.promote(version, "again", user="ana", at=AT)


def test_promotion_log_environment_variable_overrides_location(
    mlflow_registry, tmp_path, monkeypatch
):
    target = tmp_path / "audit" / "promotions.jsonl"
    monkeypatch.setenv("ARSCORE_PROMOTION_LOG", str(target))
    registry.promote(register_version(0.9, 0.9), "first", user="ana", at=AT)
    assert len(target.read_text().splitlines()) == 1
    assert log_lines(mlflow_registry) == []


def test_list_models_versions_newest_first_with_aliases_metrics_and_history(mlflow_registry):
    first = register_version(0.90, 0.95)
    registry.promote(first, "first", user="ana", at=AT)
    second = register_version(0.91, 0.96)
    registry.client().set_registered_model_alias("arscore", "challenger", second)
    listing = registry.list_models()
    assert [v["version"] for v in listing.versions] == [second, first]
    assert listing.versions[0]["aliases"] == ["challenger"]
    assert listing.versions[1]["aliases"] == ["champion"]
    assert listing.versions[0]["roc_auc"] == pytest.approx(0.91)
    assert listing.versions[0]["test_window"] == "2026-04-30..2026-06-30"
    assert [p["reason"] for p in listing.promotions] == ["first"]


def test_list_models_empty_registry_lists_nothing(mlflow_registry):
    listing = registry.list_models()
    assert listing.versions == [] and listing.promotions == []


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    commands_models.register(app)
    return app


def test_cli_promote_refused_exits_non_zero_then_force_promotes(mlflow_registry, cli):
    runner = CliRunner()
    first = register_version(0.90, 0.95)
    assert (
        runner.invoke(cli, ["promote", first, "--reason", "first", "--user", "ana"]).exit_code == 0
    )
    worse = register_version(0.80, 0.95)
    refused = runner.invoke(cli, ["promote", worse, "--reason", "try"])
    assert refused.exit_code != 0
    assert isinstance(refused.exception, registry.PromotionRefused)
    forced = runner.invoke(cli, ["promote", worse, "--reason", "drill", "--force", "--user", "ana"])
    assert forced.exit_code == 0, forced.output
    assert "overridden with --force: ROC AUC" in forced.output
    listed = runner.invoke(cli, ["models"])
    assert listed.exit_code == 0
    assert "champion" in listed.output and "drill" in listed.output


def test_promote_challenger_alias_resolves_to_its_version(mlflow_registry):
    first = register_version(0.90, 0.95)
    second = register_version(0.91, 0.96)
    registry.client().set_registered_model_alias("arscore", "challenger", second)
    record = registry.promote("challenger", "demo", user="ana", at=AT)
    assert champion_version() == second != first
    assert record["to_version"] == int(second)

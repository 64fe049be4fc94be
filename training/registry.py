"""The MLflow registry of arscore models: log a training run, register it, promote, list.

Where: ``$ARSCORE_MLFLOW_TRACKING_URI``, else ``$MLFLOW_TRACKING_URI``, else an embedded
registry ``sqlite:///models/mlflow.db`` (relative to the current directory) with artifacts in
``models/artifacts``. The tracking URI is set only when a function here is called.

Every training run registers a new version of the model and points the alias ``challenger`` at
it. ``promote`` moves the alias ``champion``; it refuses a version whose test ROC AUC or top-20%
dollar share is below the champion's, or whose test window differs from the champion's (the
figures would not be comparable), unless forced. MLflow keeps no history of aliases, so every
promotion is appended as a JSON line to ``promotion_log.jsonl`` beside the registry (or to
``$ARSCORE_PROMOTION_LOG``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import ArscoreError

TRACKING_URI_ENV = "ARSCORE_MLFLOW_TRACKING_URI"
MLFLOW_TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
PROMOTION_LOG_ENV = "ARSCORE_PROMOTION_LOG"
DEFAULT_STORE = Path("models")
PROMOTION_LOG_NAME = "promotion_log.jsonl"
CHALLENGER = "challenger"
CHAMPION = "champion"
PYFUNC_NAME = "pyfunc"
KEY_METRICS = {"roc_auc": "ROC AUC", "dollars_share_top20": "top-20% dollars captured"}
TAG_SHA = "artifact_sha256"
TAG_MODEL_SUBDIR = "model_subdir"
TAG_TEST_START, TAG_TEST_END, TAG_TEST_FINGERPRINT = "test_start", "test_end", "test_fingerprint"
TAG_KEY_METRICS = "key_metrics"
"""A version's own promotion metrics, JSON {metric: [label, "higher" or "lower"]}; versions
without it (collectibility models) are compared on KEY_METRICS, higher is better."""


class PromotionRefused(ArscoreError):
    """The version is not shown to be better than the champion on the same test window."""


def tracking_uri() -> str:
    """The tracking/registry URI in effect (environment, else the embedded default)."""
    for name in (TRACKING_URI_ENV, MLFLOW_TRACKING_URI_ENV):
        if os.environ.get(name):
            return os.environ[name]
    return f"sqlite:///{(Path.cwd() / DEFAULT_STORE / 'mlflow.db').as_posix()}"


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def promotion_log_path() -> Path:
    """``$ARSCORE_PROMOTION_LOG``, else promotion_log.jsonl beside a SQLite registry, or models/."""
    if os.environ.get(PROMOTION_LOG_ENV):
        return Path(os.environ[PROMOTION_LOG_ENV])
    database = _sqlite_path(tracking_uri())
    return (database.parent if database else Path.cwd() / DEFAULT_STORE) / PROMOTION_LOG_NAME


def client() -> Any:
    """An MlflowClient on the URI in effect; sets mlflow's global tracking/registry URI."""
    import mlflow

    uri = tracking_uri()
    database = _sqlite_path(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client: Any, name: str) -> str:
    """The experiment's id, created if needed (artifacts beside a SQLite registry)."""
    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    database = _sqlite_path(tracking_uri())
    location = (database.parent / "artifacts").resolve().as_uri() if database else None
    return mlflow_client.create_experiment(name, artifact_location=location)


@dataclass(frozen=True)
class RegisteredRun:
    """What a logged training run became in the registry."""

    run_id: str
    version: str
    model_uri: str
    artifact_sha256: str
    tracking_uri: str


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    packages = ("lightgbm", "numpy", "pandas", "scikit-learn", "pyarrow")
    return [f"{name}=={version(name)}" for name in packages]


def _log_pyfunc(
    model_dir: Path,
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    python_model: Any,
    artifact_key: str,
) -> Any:
    """Log the pyfunc wrapper with the saved model directory and the features package."""
    import mlflow
    from mlflow.models import infer_signature

    import features

    return mlflow.pyfunc.log_model(
        name=PYFUNC_NAME,
        python_model=python_model,
        artifacts={artifact_key: str(model_dir)},
        code_paths=[str(Path(features.__file__).parent)],
        pip_requirements=_pip_requirements(),
        signature=infer_signature(input_example, output_example),
        input_example=input_example,
    )


def log_training_run(
    *,
    model_name: str,
    experiment: str,
    run_name: str,
    params: dict[str, str],
    config_yaml: str,
    metrics: dict[str, float],
    model_dir: Path,
    version_tags: dict[str, str],
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    python_model: Any = None,
    artifact_key: str | None = None,
) -> RegisteredRun:
    """Log params, metrics and the model; register a new version; alias it challenger.

    ``python_model`` and ``artifact_key`` name the pyfunc wrapper and the directory of the saved
    model inside the run (default: the collectibility model's)."""
    import mlflow

    from features.model import artifact_sha256
    from features.pyfunc import MODEL_ARTIFACT_KEY, CollectibilityPyfunc

    python_model = CollectibilityPyfunc() if python_model is None else python_model
    artifact_key = artifact_key or MODEL_ARTIFACT_KEY
    mlflow_client = client()
    sha = artifact_sha256(model_dir)
    with mlflow.start_run(
        experiment_id=experiment_id(mlflow_client, experiment), run_name=run_name
    ) as run:
        run_id = run.info.run_id
        mlflow.log_params(params)
        mlflow.log_text(config_yaml, "config/training_config.yaml")
        mlflow.log_metrics(_finite(metrics))
        mlflow.log_artifacts(str(model_dir), artifact_key)
        mlflow.set_tags({TAG_SHA: sha, **version_tags})
        with warnings.catch_warnings():
            # predict has no type hints on purpose: the signature below is the input schema.
            warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
            info = _log_pyfunc(model_dir, input_example, output_example, python_model, artifact_key)
    tags = {
        **version_tags,
        TAG_SHA: sha,
        TAG_MODEL_SUBDIR: f"artifacts/{artifact_key}",
        "run_id": run_id,
    }
    version = mlflow.register_model(info.model_uri, model_name, tags=tags)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return RegisteredRun(run_id, str(version.version), info.model_uri, sha, tracking_uri())


def log_reports(run_id: str, report_dir: Path) -> None:
    """Attach the model card and plots (written once the version is known) to the run."""
    client().log_artifacts(run_id, str(report_dir), "report")


def _version_or_none(mlflow_client: Any, model_name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def key_metric_spec(version: Any) -> dict[str, tuple[str, str]]:
    """{metric: (label, "higher" or "lower")} the version is promoted on."""
    raw = version.tags.get(TAG_KEY_METRICS)
    if not raw:
        return {metric: (label, "higher") for metric, label in KEY_METRICS.items()}
    return {metric: (str(pair[0]), str(pair[1])) for metric, pair in json.loads(raw).items()}


def _key_metrics(version: Any) -> dict[str, float | None]:
    values = {}
    for metric in key_metric_spec(version):
        raw = version.tags.get(f"test_{metric}")
        values[metric] = float(raw) if raw not in (None, "") else None
    return values


def _window(version: Any) -> str:
    return f"{version.tags.get(TAG_TEST_START, '?')}..{version.tags.get(TAG_TEST_END, '?')}"


def comparison_problems(candidate: Any, champion: Any) -> list[str]:
    """Why the candidate is not shown to be at least as good as the champion (empty: it is)."""
    if champion is None:
        return []
    same_window = _window(candidate) == _window(champion) and candidate.tags.get(
        TAG_TEST_FINGERPRINT
    ) == champion.tags.get(TAG_TEST_FINGERPRINT)
    if not same_window:
        return [
            f"test sets differ: version {candidate.version} was tested on {_window(candidate)}, "
            f"champion version {champion.version} on {_window(champion)} (or on other data); "
            "their metrics are not comparable"
        ]
    problems = []
    ours, theirs = _key_metrics(candidate), _key_metrics(champion)
    for metric, (label, better) in key_metric_spec(candidate).items():
        value, champion_value = ours[metric], theirs.get(metric)
        if value is None or champion_value is None:
            problems.append(f"{label} is not recorded for both versions")
        elif (value < champion_value) if better == "higher" else (value > champion_value):
            word = "below" if better == "higher" else "above"
            problems.append(
                f"{label} {value:.4f} is {word} champion version {champion.version}'s "
                f"{champion_value:.4f}"
            )
    return problems


def promote(
    version: str | int,
    reason: str,
    force: bool = False,
    user: str = "unknown",
    *,
    at: datetime,
    model_name: str = "arscore",
) -> dict[str, Any]:
    """Point ``champion`` at a version and append the promotion to the log; returns the record."""
    from mlflow.exceptions import MlflowException

    if not reason.strip():
        raise ArscoreError("a promotion needs a reason (--reason TEXT)")
    mlflow_client = client()
    try:
        if str(version) == CHALLENGER:
            candidate = mlflow_client.get_model_version_by_alias(model_name, CHALLENGER)
        else:
            candidate = mlflow_client.get_model_version(model_name, str(version))
    except MlflowException:
        raise ArscoreError(f"model {model_name!r} has no version {version}") from None
    champion = _version_or_none(mlflow_client, model_name, CHAMPION)
    if champion is not None and str(champion.version) == str(candidate.version):
        raise ArscoreError(f"version {version} is already the champion of {model_name!r}")
    problems = comparison_problems(candidate, champion)
    if problems and not force:
        raise PromotionRefused(
            f"refusing to promote {model_name} version {version}: "
            + "; ".join(problems)
            + ". Re-run with --force to promote anyway (the override is logged)."
        )
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, candidate.version)
    record = {
        "at": at.astimezone(UTC).isoformat(timespec="seconds"),
        "by": user,
        "model": model_name,
        "from_version": int(champion.version) if champion is not None else None,
        "to_version": int(candidate.version),
        "reason": reason,
        "forced": bool(force),
        "overridden": problems,
        "test_window": _window(candidate),
        "metrics": {
            "to": _key_metrics(candidate),
            "from": _key_metrics(champion) if champion is not None else None,
        },
    }
    log_path = promotion_log_path()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
    return record


def promotion_history(model_name: str = "arscore") -> list[dict[str, Any]]:
    """The promotion log's records of a model, oldest first."""
    path = promotion_log_path()
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if r.get("model", model_name) == model_name]


@dataclass(frozen=True)
class ModelListing:
    """Registered versions (newest first) and the promotion history."""

    versions: list[dict[str, Any]]
    promotions: list[dict[str, Any]]


def list_models(model_name: str = "arscore") -> ModelListing:
    """Versions with aliases, key test metrics and test windows, plus promotion history."""
    mlflow_client = client()
    from mlflow.exceptions import MlflowException

    try:
        aliases_of = mlflow_client.get_registered_model(model_name).aliases or {}
    except MlflowException:
        return ModelListing(versions=[], promotions=promotion_history(model_name))
    found = mlflow_client.search_model_versions(f"name = '{model_name}'")
    versions = []
    for version in sorted(found, key=lambda v: int(v.version), reverse=True):
        created = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC)
        aliases = [a for a, v in aliases_of.items() if str(v) == str(version.version)]
        versions.append(
            {
                "version": str(version.version),
                "aliases": sorted(aliases),
                "created_at": created.isoformat(timespec="minutes"),
                "run_id": version.run_id or version.tags.get("run_id"),
                "test_window": _window(version),
                **dict.fromkeys(KEY_METRICS),
                **_key_metrics(version),
                "ece": float(version.tags["test_ece"]) if "test_ece" in version.tags else None,
                TAG_SHA: version.tags.get(TAG_SHA),
            }
        )
    return ModelListing(versions=versions, promotions=promotion_history(model_name))

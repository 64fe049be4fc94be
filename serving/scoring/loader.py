"""Loading the model to serve: resolve the alias, download, verify the SHA-256, load.

``models:/arscore@champion`` (or ``models:/arscore/7``) is resolved in the MLflow registry to a
version; that version's files are downloaded, the saved-model directory inside them
(``artifacts/collectibility_model``, the version tag ``model_subdir``) is hashed with
``features.model.artifact_sha256`` and compared with the version tag ``artifact_sha256`` that
training set at registration. A model built for another feature set, or whose bytes differ from
the registry record, refuses to load. A plain directory path loads a saved model directly (its
hash is computed and reported, there is no record to check it against).

mlflow is imported only here and only when a registry URI is loaded.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from features import FEATURE_SET_VERSION
from features.errors import ArscoreError
from features.model import METADATA_FILE, CollectibilityModel, artifact_sha256

logger = logging.getLogger(__name__)

TAG_SHA = "artifact_sha256"
TAG_MODEL_SUBDIR = "model_subdir"
DEFAULT_MODEL_SUBDIR = "artifacts/collectibility_model"
DEFAULT_TRACKING_URI = "sqlite:///models/mlflow.db"
REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class ModelLoadError(ArscoreError):
    """The model cannot be served; the message says why and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score, with where it came from."""

    model: CollectibilityModel
    name: str
    version: str
    alias: str | None
    uri: str
    sha256: str
    loaded_at: datetime

    @property
    def feature_set_version(self) -> str:
        """The feature set the model was built for (always this code's)."""
        return str(self.model.metadata.get("feature_set_version"))


def resolve_tracking_uri(configured: str | None) -> str:
    """The registry to use: the setting, else ``$MLFLOW_TRACKING_URI``, else the embedded one."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_feature_set(directory: Path) -> None:
    """Refuse a saved model built for another feature set, before unpickling anything."""
    path = directory / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{directory}: cannot read {METADATA_FILE} ({exc})") from None
    found = metadata.get("feature_set_version")
    if found != FEATURE_SET_VERSION:
        raise ModelLoadError(
            f"{directory}: the model was built for feature set {found!r} but this server computes "
            f"feature set {FEATURE_SET_VERSION!r}; retrain and register a model for this feature "
            "set (or deploy the server version that matches the model)"
        )


def load_directory(
    directory: Path, *, now: datetime, expected_sha256: str | None = None, **ref: Any
) -> LoadedModel:
    """Load a saved-model directory after checking its feature set and (if given) its hash."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelLoadError(f"{directory}: no such model directory")
    sha = artifact_sha256(directory)
    if expected_sha256 is not None and sha != expected_sha256:
        raise ModelLoadError(
            f"{ref.get('uri', directory)}: artifact SHA-256 {sha} does not match the registry "
            f"record {expected_sha256}; the files changed after registration, refusing to serve"
        )
    check_feature_set(directory)
    try:
        model = CollectibilityModel.load(directory)
    except ArscoreError as exc:
        raise ModelLoadError(str(exc)) from None
    ref.setdefault("name", str(model.metadata.get("model_name", directory.name)))
    ref.setdefault("version", "local")
    ref.setdefault("alias", None)
    ref.setdefault("uri", str(directory))
    return LoadedModel(model=model, sha256=sha, loaded_at=now, **ref)


def _registry_version(client: Any, name: str, alias: str | None, version: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as exc:
        wanted = f"alias {alias!r}" if alias else f"version {version}"
        raise ModelLoadError(
            f"model {name!r} has no {wanted} in the registry ({exc.error_code}); train and "
            "promote a model first (arscore train, arscore models promote)"
        ) from None


def saved_model_directory(downloaded: Path, subdir: str) -> Path:
    """The saved-model directory inside a downloaded version: the tagged ``model_subdir``, else
    the one directory under ``artifacts/`` that holds a saved model (MLflow names it after the
    directory training logged, which the tag may not know). The hash check follows either way."""
    tagged = downloaded / subdir
    if tagged.is_dir():
        return tagged
    found = [p.parent for p in (downloaded / "artifacts").glob(f"*/{METADATA_FILE}")]
    if len(found) == 1:
        return found[0]
    raise ModelLoadError(
        f"{downloaded}: no saved model at {subdir!r} and {len(found)} candidates under artifacts/"
    )


def load_registered(uri: str, tracking_uri: str | None, *, now: datetime) -> LoadedModel:
    """Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, download, verify, load."""
    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ModelLoadError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    import mlflow
    from mlflow.exceptions import MlflowException

    name, alias = match["name"], match["alias"]
    registry = resolve_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=registry, registry_uri=registry)
    version = _registry_version(client, name, alias, match["version"])
    expected = (version.tags or {}).get(TAG_SHA)
    if not expected:
        raise ModelLoadError(
            f"{name} version {version.version} has no {TAG_SHA!r} tag; refusing to serve a model "
            "whose bytes cannot be checked against the registry"
        )
    subdir = (version.tags or {}).get(TAG_MODEL_SUBDIR, DEFAULT_MODEL_SUBDIR)
    with tempfile.TemporaryDirectory(prefix="arscore-model-") as scratch:
        try:
            # Resolve the artifact location through our client: a models:/ URI would be looked
            # up in MLflow's process-wide default registry, not necessarily this one.
            location = client.get_model_version_download_uri(name, str(version.version))
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=scratch, tracking_uri=registry
            )
        except MlflowException as exc:
            raise ModelLoadError(
                f"{name} version {version.version}: download failed ({exc.error_code})"
            ) from None
        loaded = load_directory(
            saved_model_directory(Path(local), subdir),
            now=now,
            expected_sha256=expected,
            name=name,
            version=str(version.version),
            alias=alias,
            uri=uri,
        )
    logger.info(
        "model loaded",
        extra={"model": name, "version": loaded.version, "alias": alias, "sha256": loaded.sha256},
    )
    return loaded


def load_model(uri: str, tracking_uri: str | None, *, now: datetime) -> LoadedModel:
    """The model a settings ``model_uri`` names: a registry URI or a saved-model directory."""
    if uri.startswith("models:/"):
        return load_registered(uri, tracking_uri, now=now)
    return load_directory(Path(uri), now=now)

"""Every worker serves the model an admin switched to, not only the one that took the request.

``arscore serve --workers N`` runs N processes; ``POST /v1/models/reload`` reaches one of them.
That worker publishes what it switched to in the one-row ``serving_model`` table (migration
0004) under a generation number that only grows. Each worker runs a :class:`ModelWatcher`: a
daemon thread reading that row every ``model_sync_seconds`` (one primary-key read) and, when the
generation moved past its own, loading the model ``model_uri`` names now, exactly as the reload
route does, and swapping one reference (requests in flight finish on the model they started
with). The switch itself is recorded once, in the audit trail, by the worker that took the
reload; every score record names the model version and artifact hash that produced it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from serving.scoring.claim_scorer import ClaimScorer
from serving.scoring.loader import LoadedModel, ModelLoadError, load_model
from serving.settings import Settings
from serving.store.engine import write_transaction

logger = logging.getLogger(__name__)

_metadata = sa.MetaData()
serving_model = sa.Table(
    "serving_model",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.BigInteger),
    sa.Column("uri", sa.String),
    sa.Column("version", sa.String),
    sa.Column("sha256", sa.String(64)),
    sa.Column("changed_at", sa.DateTime(timezone=True)),
)


def published_generation(engine: Engine) -> int:
    """The generation of the model switch published last (0: none since the database began)."""
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(serving_model.c.generation).where(serving_model.c.id == 1)
        ).scalar()
    return int(found or 0)


def publish(engine: Engine, loaded: LoadedModel) -> int:
    """Record that the service now serves ``loaded``; returns the new generation."""
    with write_transaction(engine) as connection:
        generation = connection.execute(
            sa.update(serving_model)
            .where(serving_model.c.id == 1)
            .values(
                generation=serving_model.c.generation + 1,
                uri=loaded.uri,
                version=loaded.version,
                sha256=loaded.sha256,
                changed_at=datetime.now(UTC),
            )
            .returning(serving_model.c.generation)
        ).scalar_one()
    return int(generation)


def load_configured(settings: Settings) -> LoadedModel:
    """The model ``model_uri`` names now (e.g. the champion alias), loaded and verified."""
    return load_model(settings.model_uri, settings.mlflow_tracking_uri, now=datetime.now(UTC))


def install(state: Any, loaded: LoadedModel, settings: Settings) -> None:
    """Serve ``loaded`` from now on: one reference swapped, the metrics told."""
    state.scorer = ClaimScorer(loaded, settings.risk_band_cuts, settings.reasons_per_score)
    state.metrics.set_model(
        loaded.name, loaded.version, loaded.alias, loaded.sha256, loaded.loaded_at.timestamp()
    )


class ModelWatcher:
    """Follows the published model switches of the other workers (see the module doc)."""

    def __init__(self, state: Any, settings: Settings, engine: Engine):
        self.state = state
        self.settings = settings
        self.engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arscore-model-sync", daemon=True)

    def start(self) -> None:
        """Check every ``model_sync_seconds`` until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """End the checks (a load in progress finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.model_sync_seconds):
            try:
                self.check()
            except SQLAlchemyError as error:
                logger.warning(
                    "model sync: database unavailable", extra={"error": type(error).__name__}
                )

    def check(self) -> bool:
        """Switch to the current model if another worker published a newer switch."""
        generation = published_generation(self.engine)
        if generation <= self.state.model_generation:
            return False
        with self.state.reload_lock:
            if generation <= self.state.model_generation:
                return False  # this worker published it, or switched meanwhile
            previous = self.state.scorer.loaded
            try:
                loaded = load_configured(self.settings)
            except ModelLoadError as error:
                logger.error(
                    "model sync: the published model cannot be served, keeping the current one",
                    extra={"reason": str(error)},
                )
                self.state.model_generation = generation
                return False
            install(self.state, loaded, self.settings)
            self.state.model_generation = generation
        logger.info(
            "model switched by another worker's reload",
            extra={
                "from_version": previous.version,
                "to_version": loaded.version,
                "sha256": loaded.sha256,
            },
        )
        return True

"""Serving configuration: environment variables with the prefix ARSCORE_, validated on start.

One class for the server, the worklist and the batch commands; ``create_app`` and every CLI
command read it before doing anything, so a bad value fails at start with the variable's name.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the server; a bad value fails fast with the variable's name."""

    model_config = SettingsConfigDict(env_prefix="ARSCORE_", extra="ignore")

    model_uri: str = Field(
        "models:/arscore@champion",
        description="registry alias URI (models:/NAME@ALIAS) or a local saved-model directory",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="tracking/registry URI; default sqlite:///models/mlflow.db"
    )
    database_url: str = Field(
        "sqlite:///var/arscore.db",
        description="audit, keys and history store (SQLite or PostgreSQL)",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_batch_items: int = Field(1000, ge=1, le=100_000)
    risk_band_cuts: tuple[float, ...] = Field(
        (0.2, 0.5, 0.8), description="probability cut points between risk bands, ascending"
    )
    reasons_per_score: int = Field(4, ge=0, le=4)
    audit_retention_days: int = Field(6 * 365 + 2, ge=6 * 365)
    pseudonym_key: str | None = Field(None, repr=False)
    pseudonym_key_file: Path | None = None
    policy_file: Path | None = None
    log_level: str = "INFO"
    # Added by the HTTP app (serving/api/app.py):
    max_request_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="largest request body accepted (else 413)"
    )
    max_history_rows: int = Field(
        200_000, ge=1, description="claims + transactions rows per POST /v1/history (else 413)"
    )
    migrate_on_start: bool = Field(
        True, description="run the database migrations to head when the server starts"
    )
    db_pool_size: int = Field(16, ge=1, le=256, description="database connections per worker")
    threadpool_size: int = Field(
        8, ge=1, le=256, description="threads running blocking routes (scores, history)"
    )
    access_log: bool = Field(True, description="one JSON log line per request (no bodies)")
    model_sync_seconds: float = Field(
        2.0,
        ge=0,
        description="how often each worker checks whether another worker's reload switched the "
        "model (0: never; then a reload reaches only the worker that took it)",
    )
    worklist_cool_off_days: int = Field(
        7, ge=0, le=365, description="days an account stays off the worklist after an action"
    )
    worklist_touches_per_day: int = Field(
        40, ge=0, le=100_000, description="capacity: touches a team makes per day"
    )
    write_off_approval_above: Decimal = Field(
        Decimal("1000.00"),
        ge=0,
        description="write-offs above this many dollars need a second user (approver role)",
    )
    worklist_rescore_on_read: bool = Field(
        True, description="rescore on GET /v1/worklist when history, model or day changed"
    )
    tune_gc: bool = Field(
        True,
        description="after start-up, freeze the heap and raise the garbage collector's "
        "thresholds (see serving.api.app); off for apps created inside a longer-lived process",
    )

    @field_validator("risk_band_cuts")
    @classmethod
    def _ascending(cls, cuts: tuple[float, ...]) -> tuple[float, ...]:
        if list(cuts) != sorted(cuts) or any(not 0 < c < 1 for c in cuts):
            raise ValueError("risk band cut points must be ascending and strictly between 0 and 1")
        return cuts


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; tests call get_settings.cache_clear() to override."""
    return Settings()

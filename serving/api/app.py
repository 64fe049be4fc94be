"""The HTTP app: ``create_app(settings)`` builds it, its lifespan loads the model once.

Routes live in ``serving.api.routers`` (one per resource); this module wires stores, model, metrics
and the error handlers that keep every error body free of stack traces and request data (the
default 422 handler would echo the submitted ``input``, which can hold a patient_id).
"""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from features.errors import ArscoreError, ValidationError
from features.pseudonym import read_key
from serving.access.keys import KeyStore
from serving.api.json_logs import exception_site
from serving.api.metrics import Metrics, MetricsMiddleware
from serving.api.model_sync import ModelWatcher, install, load_configured, published_generation
from serving.api.routers import (
    accounts,
    approvals,
    audit,
    health,
    history,
    models,
    scores,
    worklist,
)
from serving.api.schemas import ProblemOut, ScoreRequest, openapi_components
from serving.audit.records import AuditUnavailable
from serving.audit.store import AuditStore
from serving.history.store import HistoryStore
from serving.history.tables import HistoryStoreError, HistoryStoreUnavailable
from serving.policy.config import load_policy, stamped_policy_version
from serving.settings import Settings, get_settings
from serving.store.engine import make_engine, upgrade

logger = logging.getLogger(__name__)

DESCRIPTION = """Collectibility scores for open healthcare A/R balances.

Every route except `/healthz`, `/readyz` and `/metrics` needs an API key, sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`, issued to a user (in the user's role) or to
a system integration. Roles: `scorer` (scores, history), `collector` (worklist, account
actions), `approver` (decides write-offs above the approval amount: `/v1/approvals`; never the
user who asked), `auditor` (audit records), `admin` (everything, model reload).
No/invalid key: 401; wrong role: 403. Patient identifiers are pseudonymized on arrival and are
never stored, logged or returned."""


def pseudonym_key(settings: Settings) -> bytes:
    """The HMAC key from ``ARSCORE_PSEUDONYM_KEY`` or ``ARSCORE_PSEUDONYM_KEY_FILE``."""
    key = read_key(settings.pseudonym_key, settings.pseudonym_key_file)
    if key is None:
        raise ArscoreError(
            "no pseudonymization key: set ARSCORE_PSEUDONYM_KEY or ARSCORE_PSEUDONYM_KEY_FILE"
        )
    return key


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the stores, load the model (fully, before the first request), close at the end."""
    settings: Settings = app.state.settings
    state = app.state
    state.pseudonym_key = pseudonym_key(settings)
    state.policy = load_policy(settings.policy_file)
    state.policy_version = stamped_policy_version(
        state.policy, settings.risk_band_cuts, settings.reasons_per_score
    )
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
    engine = make_engine(
        settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size
    )
    state.probe_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="arscore-probe")
    watcher: ModelWatcher | None = None
    try:
        await _open(state, settings, engine)
        if settings.model_sync_seconds > 0:
            watcher = ModelWatcher(state, settings, engine)
            watcher.start()
        if settings.tune_gc:
            _freeze_startup_heap()
        yield
    finally:
        if watcher is not None:
            watcher.stop()
        state.probe_executor.shutdown(wait=False, cancel_futures=True)
        engine.dispose()


GC_THRESHOLDS = (50_000, 20, 100)
"""Allocations between young collections, and the ratios for the older generations."""


def _freeze_startup_heap() -> None:
    """Tune the cyclic garbage collector for scoring: freeze what start-up allocated (libraries,
    the model: some 350,000 objects) so no collection walks it again, and collect the young
    generation every 50,000 allocations instead of 700.

    A 1,000-claim request allocates ~100,000 containers that live until its response (records,
    snapshot dicts), nearly all freed by reference counting; with the default thresholds the
    collector ran ~130 times per such request, full collections included (~45 ms of ~230 ms of
    CPU measured in-process), with these ~1 time (~35 ms). Frozen objects are never collected:
    a model replaced by a reload is freed by reference counting only."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _open(state: Any, settings: Settings, engine: Engine) -> None:
    """Migrate, open the stores and load the model (in worker threads: they block)."""
    if settings.migrate_on_start:
        await run_in_threadpool(upgrade, engine)
    state.audit = AuditStore(engine)
    state.keys = KeyStore(engine)
    state.history = HistoryStore(engine)
    state.reload_lock = threading.Lock()
    state.model_generation = await run_in_threadpool(published_generation, engine)
    loaded = await run_in_threadpool(load_configured, settings)
    install(state, loaded, settings)
    logger.info(
        "serving model",
        extra={"model": loaded.name, "version": loaded.version, "alias": loaded.alias},
    )


def _error(status_code: int, detail: object, **extra: object) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code)


async def request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with each bad field's path and what was expected, never the submitted value."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    logger.info("request rejected: invalid input", extra={"n_errors": len(detail)})
    return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


async def history_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 listing every problem of a history send (table, column, rows, expectation)."""
    assert isinstance(exc, ValidationError)
    problems = [
        ProblemOut(
            source=p.source,
            column=p.column,
            expected=p.expected,
            rows=list(p.rows),
            n_rows=p.n_rows,
        ).model_dump()
        for p in exc.problems
    ]
    detail = f"{len(problems)} problem(s) in the input, nothing was written"
    return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, problems=problems)


async def history_store_error(request: Request, exc: Exception) -> JSONResponse:
    """422: the history store refused the send (its message names what to fix)."""
    return _error(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503: a store could not write or read; nothing was scored or written."""
    which = "audit store" if isinstance(exc, AuditUnavailable) else "database"
    logger.error("request refused: %s unavailable", which, extra=exception_site(exc))
    return _error(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"the {which} is unavailable; nothing was scored or written, retry later",
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """500 with an error id to quote; the log line has the exception's type and site only."""
    error_id = uuid.uuid4().hex
    logger.error("unexpected error", extra={"error_id": error_id, **exception_site(exc)})
    return _error(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error", error_id=error_id)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The arscore HTTP app; nothing is opened or loaded until its lifespan starts."""
    settings = settings or get_settings()
    app = FastAPI(
        title="arscore",
        version="1",
        summary="Collectibility scoring for healthcare accounts receivable",
        description=DESCRIPTION,
        lifespan=lifespan,
        max_body_size=settings.max_request_bytes,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, access_log=settings.access_log)
    app.add_exception_handler(RequestValidationError, request_validation_error)
    app.add_exception_handler(ValidationError, history_validation_error)
    app.add_exception_handler(HistoryStoreError, history_store_error)
    for unavailable in (AuditUnavailable, HistoryStoreUnavailable, SQLAlchemyError):
        app.add_exception_handler(unavailable, store_unavailable)
    app.add_exception_handler(Exception, unexpected_error)
    routers = (scores, history, models, audit, health, worklist, accounts, approvals)
    for module in routers:
        app.include_router(module.router)
    _document_raw_bodies(app, ScoreRequest)
    return app


def _document_raw_bodies(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add the schemas of bodies routes validate themselves to the app's OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(openapi_components(*models))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

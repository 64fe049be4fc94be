"""GET /healthz (alive), GET /readyz (can score), GET /metrics (Prometheus); no API key.

All three are ``async`` and never wait for the scoring threadpool: /readyz runs its database
check on the app's own small executor, so a busy server still answers its probes.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from serving.api.metrics import CONTENT_TYPE
from serving.api.schemas import Readiness
from serving.audit.tables import audit_chain_head
from serving.store.engine import SQLITE_BEGIN_OPTION, is_sqlite

router = APIRouter(tags=["health"])
READY_TIMEOUT_SECONDS = 5.0


def audit_writable(engine: Engine) -> bool:
    """Whether the audit store would take a write now: the write lock (SQLite) or a read-write
    transaction (PostgreSQL) is obtained on the chain head table, then rolled back."""
    try:
        with engine.connect() as connection:
            if is_sqlite(connection):
                connection = connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with connection.begin() as transaction:
                connection.execute(sa.select(audit_chain_head.c.last_seq)).first()
                if not is_sqlite(connection):
                    read_only = connection.execute(sa.text("SHOW transaction_read_only")).scalar()
                    if read_only == "on":
                        return False
                transaction.rollback()
        return True
    except Exception:  # noqa: BLE001 (any failure means not ready; the reason is not needed)
        return False


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves HTTP."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="A model is loaded and the audit store takes writes",
    responses={503: {"model": Readiness, "description": "not ready"}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 when the server can score and audit, else 503 with the failing check."""
    state = request.app.state
    model_loaded = getattr(state, "scorer", None) is not None
    loop = asyncio.get_running_loop()
    try:
        writable = await asyncio.wait_for(
            loop.run_in_executor(state.probe_executor, audit_writable, state.audit.engine),
            READY_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        writable = False
    ready = model_loaded and writable
    body = Readiness(
        status="ready" if ready else "not_ready",
        checks={"model_loaded": model_loaded, "audit_store_writable": writable},
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Request counts and latencies by route and status, scores by band, the model in use."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)

"""Dependencies of the routes, as ``Annotated`` aliases (``SettingsDep``, ``ScorerDep``, ...).

Everything comes from ``app.state``, set up once by the lifespan. The getters are ``async``
(they only read attributes): a plain ``def`` dependency would cost a threadpool round trip.
``ScorerDep`` is read once at the start of a request, so a reload that swaps the scorer never
changes the model under a request in flight. ``TodayDep`` is the one place a route reads the
clock; tests override it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, TypeVar

import pydantic
import pydantic_core
from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from serving.access.keys import KeyStore, Principal
from serving.api.metrics import Metrics
from serving.audit.store import AuditStore
from serving.history.store import HistoryStore
from serving.policy.config import Policy
from serving.scoring.claim_scorer import ClaimScorer
from serving.settings import Settings

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

ADMIN = "admin"
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


def _state(request: Request, name: str) -> Any:
    return getattr(request.app.state, name)


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return _state(request, "settings")


async def get_scorer(request: Request) -> ClaimScorer:
    """The scorer in use when the request started."""
    return _state(request, "scorer")


async def get_audit(request: Request) -> AuditStore:
    """The audit store."""
    return _state(request, "audit")


async def get_history(request: Request) -> HistoryStore:
    """The history store."""
    return _state(request, "history")


async def get_keys(request: Request) -> KeyStore:
    """The API key store."""
    return _state(request, "keys")


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    return _state(request, "metrics")


async def get_pseudonym_key(request: Request) -> bytes:
    """The HMAC key patient identifiers are pseudonymized with."""
    return _state(request, "pseudonym_key")


async def get_policy(request: Request) -> Policy:
    """The decision policy, loaded and validated once at start."""
    return _state(request, "policy")


async def get_policy_version(request: Request) -> str:
    """The version stamped on scores, worklist rows and actions: the policy file's own version and
    the scoring configuration's (``serving.policy.config.stamped_policy_version``)."""
    return _state(request, "policy_version")


async def today() -> date:
    """Today's date at the server: the default as-of date of a score."""
    return date.today()


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ScorerDep = Annotated[ClaimScorer, Depends(get_scorer)]
AuditDep = Annotated[AuditStore, Depends(get_audit)]
HistoryDep = Annotated[HistoryStore, Depends(get_history)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
PseudonymKeyDep = Annotated[bytes, Depends(get_pseudonym_key)]
PolicyDep = Annotated[Policy, Depends(get_policy)]
PolicyVersionDep = Annotated[str, Depends(get_policy_version)]
TodayDep = Annotated[date, Depends(today)]


async def get_principal(
    keys: KeysDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    """The caller behind the API key (``Authorization: Bearer`` or ``X-API-Key``); else 401.

    The key store answers from its cache, or from the database (in a worker thread)."""
    tokens = {t for t in (bearer.credentials if bearer else None, api_key) if t}
    if len(tokens) != 1:
        detail = "an API key is required" if not tokens else "two different API keys were sent"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=UNAUTHENTICATED)
    principal = await run_in_threadpool(keys.authenticate, tokens.pop())
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key", headers=UNAUTHENTICATED
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_role(*roles: str) -> Any:
    """A dependency admitting the given roles (and admin, who may do everything); else 403."""

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role != ADMIN and principal.role not in roles:
            needed = " or ".join((*roles, ADMIN))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role '{principal.role}' may not do this (needs {needed})",
            )
        return principal

    return Depends(check)


ScorerRole = Annotated[Principal, require_role("scorer")]
AuditorRole = Annotated[Principal, require_role("auditor")]
AdminRole = Annotated[Principal, require_role()]


async def raw_body(request: Request) -> bytes:
    """The request's body as sent, for routes that validate JSON themselves (in a thread)."""
    return await request.body()


def parse_json_body(raw: bytes, model: type[ModelT], max_items: int) -> ModelT:
    """``model`` from a JSON body: 413 when its ``items`` outnumber ``max_items``, 422 naming
    every bad field (``loc`` starting with ``body``) as FastAPI's own validation does.

    pydantic reads the JSON bytes in Rust, without the Python objects of ``json.loads`` that
    FastAPI's body parameter would build and then validate."""
    try:
        parsed = model.model_validate_json(raw)
    except pydantic.ValidationError as error:
        refuse_too_many(_count_items(raw), max_items)
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    refuse_too_many(len(getattr(parsed, "items", ())), max_items)
    return parsed


def _count_items(raw: bytes) -> int:
    try:
        body = pydantic_core.from_json(raw)
    except ValueError:
        return 0  # not JSON: validation answers 422
    items = body.get("items") if isinstance(body, dict) else None
    return len(items) if isinstance(items, list) else 0


def refuse_too_many(count: int, max_items: int) -> None:
    """413 when a request's ``count`` items outnumber ``max_items``."""
    if count > max_items:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{count} items in one request; at most {max_items} are allowed",
        )


RawBody = Annotated[bytes, Depends(raw_body)]

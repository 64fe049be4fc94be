"""Write-off approvals (approver): ``GET /v1/approvals`` lists requests, ``GET
/v1/approvals/{id}`` reads one, ``POST /v1/approvals/{id}`` approves or rejects it with a note.

A write-off that needs approval is filed by ``POST /v1/accounts/{claim_id}/actions`` (202 with
its ``write_off_request_id``); ``serving.worklist.approvals`` decides it, on the account's facts
as of the day of the decision.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from serving.access.keys import Principal
from serving.api.deps import AuditDep, PolicyDep, TodayDep, require_role
from serving.worklist.action_checks import ApprovalRequired, WriteOffCategory
from serving.worklist.approvals import (
    DecisionRequest,
    RequestConflict,
    RequestNotFound,
    decide,
    list_requests,
)
from serving.worklist.idempotency import (
    KEY_PATTERN,
    Answer,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
)
from serving.worklist.store import REQUEST_STATUSES
from serving.worklist.write_off_requests import PAGE_LIMIT, WriteOffRequest, read_request

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])
ApproverRole = Annotated[Principal, require_role("approver")]
ReaderRole = Annotated[Principal, require_role("collector", "approver")]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
RequestId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the write_off_request_id")]
IDEMPOTENCY_DESCRIPTION = (
    "a key of the client's choosing, new for each new request: a retry with the same key and "
    "request gets the first answer back (Idempotent-Replayed: true) and records nothing again"
)
IdempotencyKey = Annotated[
    str | None, Header(pattern=KEY_PATTERN, description=IDEMPOTENCY_DESCRIPTION)
]
Dollars = Annotated[
    Decimal,
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "description": "dollars, exact"},
        mode="serialization",
    ),
]
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true on the stored answer of a retry with the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


class PrincipalOut(BaseModel):
    """Who acted: the API key, its role, and the user or the system it was issued to (neither:
    a key made before users existed)."""

    key_id: str
    role: str
    user: str | None
    system: str | None


class WriteOffRequestOut(BaseModel):
    """A write-off that needed an approver: what was asked, by whom, and what became of it."""

    write_off_request_id: str = Field(description="its audit record: GET /v1/audit/{id}")
    status: Literal[REQUEST_STATUSES]  # type: ignore[valid-type]
    claim_id: str
    category: WriteOffCategory
    amount: Dollars
    carc_code: str | None
    note: str
    override: bool = Field(description="the write-off departs from the recommendation")
    override_reason: str | None
    score_id: str = Field(description="the score acted on")
    recommended_action: str
    written_off_before: Dollars = Field(
        description="dollars the account had had written off here when it was requested"
    )
    still_open: Dollars = Field(description="dollars still open on the account then")
    requested_on: dt.date
    requested_at: dt.datetime
    requested_by: PrincipalOut
    decided_at: dt.datetime | None
    decided_by: PrincipalOut | None
    decision_note: str | None
    action_id: str | None = Field(
        description="the write-off recorded on approval: GET /v1/audit/{action_id}"
    )


class RequestsOut(BaseModel):
    """A page of write-off requests, oldest first."""

    items: list[WriteOffRequestOut]
    status: Literal[REQUEST_STATUSES]  # type: ignore[valid-type]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: done")


class DecisionIn(BaseModel):
    """The approver's decision on a pending write-off, with a note saying why."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: Note = Field(description="why (no patient data)")


class ErrorOut(BaseModel):
    """What went wrong, in words."""

    detail: str


class FieldProblemOut(BaseModel):
    """One invalid field: where (``loc``, starting with body, query, path or header), what was
    expected; never the value sent."""

    loc: list[str | int]
    msg: str
    type: str


class UnprocessableOut(BaseModel):
    """422: every invalid field, or in words what the request lacks."""

    detail: str | list[FieldProblemOut]


class ConflictOut(BaseModel):
    """Why the request conflicts with the account's state; ``rule_id`` and ``reason`` name the
    policy rule when one refuses it."""

    detail: str
    rule_id: str | None = None
    reason: str | None = None


def _principal(principal: Principal) -> PrincipalOut:
    return PrincipalOut(
        key_id=principal.key_id, role=principal.role, user=principal.user, system=principal.system
    )


def request_out(request: WriteOffRequest) -> WriteOffRequestOut:
    """The response shape of a write-off request."""
    values = {
        k: v for k, v in vars(request).items() if k not in ("requester", "decided_by", "request_id")
    }
    return WriteOffRequestOut(
        **values,
        write_off_request_id=request.request_id,
        requested_by=_principal(request.requester),
        decided_by=None if request.decided_by is None else _principal(request.decided_by),
    )


def send(answer: Answer) -> Response:
    """An answer of the worklist's services as the HTTP response, byte for byte."""
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return Response(answer.body, answer.status_code, headers, media_type="application/json")


def conflict(error: RequestConflict | IdempotencyKeyInUse) -> JSONResponse:
    """409 with what conflicts (and the rule, when a policy rule refuses)."""
    body: dict[str, Any] = {"detail": str(error)}
    if getattr(error, "rule_id", None) is not None:
        body.update(rule_id=error.rule_id, reason=error.reason)  # type: ignore[union-attr]
    return JSONResponse(body, status_code=status.HTTP_409_CONFLICT)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no or invalid API key, or two different keys"},
    403: {"model": ErrorOut, "description": "not an approver, not a user, or the requester"},
    404: {"model": ErrorOut, "description": "no write-off request has this id"},
    409: {
        "model": ConflictOut,
        "description": "decided already; the write-off no longer holds on today's facts (a "
        "policy rule, what is still open, the account closed); or a request with the same "
        "Idempotency-Key is being recorded",
    },
    422: {
        "model": UnprocessableOut,
        "description": "an invalid field, or an Idempotency-Key reused for another request",
    },
    503: {"model": ErrorOut, "description": "a store is unavailable; nothing was recorded"},
}


INVALID_QUERY = {"model": UnprocessableOut, "description": "an invalid parameter"}


@router.get(
    "",
    response_model=RequestsOut,
    summary="List write-off requests (pending by default)",
    responses={
        **{k: ERRORS[k] for k in (401, 503)},
        403: {"model": ErrorOut, "description": "not an approver's key"},
        422: INVALID_QUERY,
    },
)
def get_requests(
    principal: ApproverRole,
    audit: AuditDep,
    request_status: Annotated[
        Literal[REQUEST_STATUSES],  # type: ignore[valid-type]
        Query(alias="status", description="which requests"),
    ] = "pending",
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="a page's next_cursor")
    ] = None,
) -> RequestsOut:
    """The write-off requests of one status, oldest first: each with its amount, category,
    note, the account's write-offs before it and who asked."""
    page = list_requests(audit.engine, request_status, limit, cursor)
    items = [request_out(request) for request in page.items]
    return RequestsOut(items=items, status=request_status, next_cursor=page.next_cursor)


@router.get(
    "/{request_id}",
    response_model=WriteOffRequestOut,
    summary="Read one write-off request",
    responses={
        **{k: ERRORS[k] for k in (401, 404, 503)},
        403: {"model": ErrorOut, "description": "not a collector's or an approver's key"},
        422: INVALID_QUERY,
    },
)
def get_request(principal: ReaderRole, request_id: RequestId, audit: AuditDep) -> Any:
    """One request and its decision, for the collector who filed it and for approvers."""
    with audit.engine.connect() as connection:
        found = read_request(connection, request_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no write-off request has this id")
    return request_out(found)


def _render(decided: WriteOffRequest) -> tuple[int, bytes]:
    return status.HTTP_200_OK, request_out(decided).model_dump_json().encode("utf-8")


@router.post(
    "/{request_id}",
    response_model=WriteOffRequestOut,
    summary="Approve or reject a pending write-off",
    responses={200: {"headers": REPLAYED}, **ERRORS},
)
def decide_request(
    principal: ApproverRole,
    request_id: RequestId,
    body: DecisionIn,
    audit: AuditDep,
    policy: PolicyDep,
    today: TodayDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Approve (the write-off is checked again on today's facts and recorded) or reject a
    pending request, with a note; each decision is in the audit chain. The approver is a user
    of role approver or admin, and never the user who asked."""
    try:
        answer = decide(
            request_id,
            DecisionRequest(body.decision, body.note),
            approver=principal,
            policy=policy,
            audit=audit,
            today=today,
            render=_render,
            idempotency_key=idempotency_key,
        )
    except RequestNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except ApprovalRequired as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
    except (RequestConflict, IdempotencyKeyInUse) as error:
        return conflict(error)
    except IdempotencyKeyReused as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    return send(answer)

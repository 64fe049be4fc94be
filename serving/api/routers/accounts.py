"""POST /v1/accounts/{claim_id}/actions (collector): record what was done on an account.

Checked on the account's facts as of today (``serving.worklist.actions``); a write-off that needs
an approver is recorded at once with ``X-Approver-Key`` (integrations), else filed as pending
(202) for ``POST /v1/approvals/{id}``. ``Idempotency-Key`` makes a retry answer the same.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from serving.access.keys import KeyStore, Principal
from serving.api.deps import AuditDep, KeysDep, PolicyDep, SettingsDep, TodayDep
from serving.api.routers.approvals import (
    REPLAYED,
    ConflictOut,
    Dollars,
    ErrorOut,
    IdempotencyKey,
    UnprocessableOut,
    WriteOffRequestOut,
    conflict,
    request_out,
    send,
)
from serving.api.routers.worklist import CollectorRole
from serving.worklist.action_checks import (
    AccountNotFound,
    ActionForbidden,
    ActionInvalid,
    ActionName,
    ActionRequest,
    ApprovalRequired,
    Outcome,
    WriteOffCategory,
)
from serving.worklist.actions import RecordedAction, record_action
from serving.worklist.idempotency import IdempotencyKeyInUse, IdempotencyKeyReused
from serving.worklist.write_off_requests import WriteOffRequest

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ActionIn(BaseModel):
    """What the collector did. A write-off needs a category, a note and the CARC for contractual
    and denial write-offs; above the approval amount (in total on the account) it waits for an
    approver, or names one in X-Approver-Key."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName
    outcome: Outcome | None = Field(None, description="required when action is 'worked'")
    category: WriteOffCategory | None = Field(None, description="required for a write-off")
    amount: Decimal | None = Field(
        None,
        gt=0,
        decimal_places=2,
        description="write-off dollars; default what is still open on the account",
    )
    carc_code: (
        Annotated[str, StringConstraints(pattern=r"^((CO|PR|OA|PI)-)?[A-Z]?\d{1,3}$")] | None
    ) = Field(None, description="e.g. CO-45; required for contractual and denial write-offs")
    note: Note | None = Field(None, description="why; required for a write-off (no patient data)")
    override_reason: Note | None = Field(
        None, description="required when the action departs from the recommendation"
    )
    score_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="the score acted on (default: the account's current score)"
    )


class ActionOut(BaseModel):
    """The recorded action."""

    action_id: str = Field(description="its audit record: GET /v1/audit/{action_id}")
    claim_id: str
    action: str
    acted_on: dt.date
    recorded_at: dt.datetime
    score_id: str = Field(description="the score acted on")
    recommended_action: str
    override: bool
    amount: Dollars | None
    approver_key_id: str | None
    approver_user: str | None = Field(description="the approving user, when one was needed")
    write_off_request_id: str | None = Field(
        description="the approved request this write-off came from (GET /v1/approvals/{id})"
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    201: {"headers": REPLAYED},
    202: {
        "model": WriteOffRequestOut,
        "headers": REPLAYED,
        "description": "a write-off that needs an approver, filed as pending: an approver "
        "decides it with POST /v1/approvals/{write_off_request_id}",
    },
    401: {"model": ErrorOut, "description": "no or invalid API key, or two different keys"},
    403: {
        "model": ErrorOut,
        "description": "wrong role, or an X-Approver-Key that is invalid, not an approver "
        "user's, or the requesting user's",
    },
    404: {
        "model": ErrorOut,
        "description": "no open balance of this claim on the worklist, or none as of today",
    },
    409: {
        "model": ConflictOut,
        "description": "the policy forbids this action on today's facts (rule_id and reason "
        "say which rule), or a request with the same Idempotency-Key is being recorded",
    },
    422: {
        "model": UnprocessableOut,
        "description": "an invalid field; a missing outcome, category, note, CARC or override "
        "reason; an amount above what is still open; an Idempotency-Key reused",
    },
    503: {"model": ErrorOut, "description": "a store is unavailable; nothing was recorded"},
}


def _render(outcome: RecordedAction | WriteOffRequest) -> tuple[int, bytes]:
    if isinstance(outcome, WriteOffRequest):
        return status.HTTP_202_ACCEPTED, request_out(outcome).model_dump_json().encode("utf-8")
    return status.HTTP_201_CREATED, ActionOut(**vars(outcome)).model_dump_json().encode("utf-8")


def _approver(keys: KeyStore, token: str | None) -> Principal | None:
    if token is None:
        return None
    approver = keys.authenticate(token)
    if approver is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "X-Approver-Key is invalid or revoked")
    return approver


@router.post(
    "/{claim_id}/actions",
    response_model=ActionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record an action on an account",
    responses=ERRORS,
)
def create_action(
    principal: CollectorRole,
    claim_id: Annotated[str, Path(max_length=64)],
    body: ActionIn,
    keys: KeysDep,
    audit: AuditDep,
    policy: PolicyDep,
    worklist_settings: SettingsDep,
    today: TodayDep,
    x_approver_key: Annotated[
        str | None,
        Header(max_length=256, description="an approver user's API key (integrations)"),
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Record a worked account (with its outcome), a payment plan, a FAP referral, a
    resubmission, an appeal or a write-off, linked to the score it acted on, in the audit
    chain, after checking it on the account's facts as of today. A write-off the policy forbids
    is refused (409) with the rule's id and reason; one above the approval amount in total on
    the account (or administrative) is filed for an approver (202), unless X-Approver-Key names
    one."""
    approver = _approver(keys, x_approver_key)
    try:
        answer = record_action(
            ActionRequest(**body.model_dump()),
            claim_id,
            requester=principal,
            approver=approver,
            policy=policy,
            approval_above=worklist_settings.write_off_approval_above,
            audit=audit,
            today=today,
            render=_render,
            idempotency_key=idempotency_key,
        )
    except ActionForbidden as refused:
        return JSONResponse(
            {"detail": str(refused), "rule_id": refused.rule_id, "reason": refused.sentence},
            status_code=status.HTTP_409_CONFLICT,
        )
    except IdempotencyKeyInUse as error:
        return conflict(error)
    except AccountNotFound as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    except ApprovalRequired as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
    except (ActionInvalid, IdempotencyKeyReused) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    return send(answer)

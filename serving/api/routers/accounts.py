"""POST /v1/accounts/{claim_id}/actions (collector): record what was done on an account."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from serving.access.keys import KeyStore, Principal
from serving.api.deps import AuditDep, HistoryDep, KeysDep, PolicyDep, SettingsDep, TodayDep
from serving.api.routers.worklist import CollectorRole
from serving.worklist.actions import (
    ActionForbidden,
    ActionInvalid,
    ActionName,
    ActionRequest,
    ApprovalRequired,
    Outcome,
    WriteOffCategory,
    record_action,
)
from serving.worklist.store import WorklistStore

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class ActionIn(BaseModel):
    """What the collector did. A write-off needs a category, a note, the CARC for contractual
    and denial write-offs, and above the approval amount a second user (X-Approver-Key)."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName
    outcome: Outcome | None = Field(None, description="required when action is 'worked'")
    category: WriteOffCategory | None = Field(None, description="required for a write-off")
    amount: Decimal | None = Field(
        None, gt=0, decimal_places=2, description="write-off dollars; default the open balance"
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
    amount: Decimal | None
    approver_key_id: str | None


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or invalid API key"},
    403: {"description": "wrong role, or a write-off that needs an approver lacks one"},
    404: {"description": "no open balance of this claim on the worklist"},
    409: {"description": "the policy forbids this action: rule_id and reason say which rule"},
    422: {"description": "missing outcome, category, note, CARC or override reason"},
    503: {"description": "a store is unavailable; nothing was recorded"},
}


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
    history: HistoryDep,
    policy: PolicyDep,
    worklist_settings: SettingsDep,
    today: TodayDep,
    x_approver_key: Annotated[str | None, Header(description="the approver's API key")] = None,
) -> Any:
    """Record a worked account (with its outcome), a payment plan, a FAP referral, a
    resubmission, an appeal or a write-off, linked to the score it acted on, in the audit
    chain. A write-off the policy forbids is refused (409) with the rule's id and reason."""
    account = WorklistStore(history.engine).account(claim_id)
    if account is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "no open balance of this claim on the worklist"
        )
    approver = _approver(keys, x_approver_key)
    try:
        recorded = record_action(
            ActionRequest(**body.model_dump()),
            account,
            collector=principal,
            approver=approver,
            policy=policy,
            approval_above=worklist_settings.write_off_approval_above,
            audit=audit,
            today=today,
        )
    except ActionForbidden as refused:
        return JSONResponse(
            {"detail": str(refused), "rule_id": refused.rule_id, "reason": refused.sentence},
            status_code=status.HTTP_409_CONFLICT,
        )
    except ApprovalRequired as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
    except ActionInvalid as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    return ActionOut(**vars(recorded))

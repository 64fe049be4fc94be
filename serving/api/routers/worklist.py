"""GET /v1/worklist (collector): today's queue of open balances; POST /v1/worklist/rescore."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from features.money import cents_to_dollars, dollars
from serving.access.keys import Principal
from serving.api.deps import (
    AdminRole,
    AuditDep,
    HistoryDep,
    PolicyDep,
    PolicyVersionDep,
    ScorerDep,
    SettingsDep,
    TodayDep,
    require_role,
)
from serving.worklist.rescoring import ensure_fresh, rescore
from serving.worklist.store import (
    Cursor,
    WorklistError,
    WorklistRow,
    WorklistStore,
)

router = APIRouter(prefix="/v1", tags=["worklist"])
CollectorRole = Annotated[Principal, require_role("collector")]


class WorklistReasonOut(BaseModel):
    """Why the action: a policy rule or one of the model's reasons."""

    source: Literal["rule", "model"]
    rule_id: str
    sentence: str


class WorklistItemOut(BaseModel):
    """One account to work: the facts a collector needs, the score, the action and why."""

    rank: int = Field(description="1-based position in the ordering")
    in_today_queue: bool = Field(description="within today's capacity (else it waits)")
    claim_id: str
    score_id: str = Field(description="the score this line shows: name it when acting")
    line: str = Field(description="the key facts on one line")
    open_balance: Decimal = Field(description="dollars, exact")
    days_in_ar: int | None = Field(description="days since the date of service")
    aging_bucket: str | None
    payer_type: str
    payer_id: str
    responsibility: Literal["payer", "patient"]
    last_activity_date: dt.date | None
    last_activity_type: str | None
    probability_collected: float | None
    risk_band: str | None
    expected_recovery: Decimal | None
    action: str = Field(description="the policy's recommended next action")
    expected_net_recovery: Decimal | None
    expected_net_recovery_per_touch: Decimal = Field(description="the ordering key, dollars")
    reasons: list[WorklistReasonOut]
    as_of: dt.date


class WorklistOut(BaseModel):
    """A page of the worklist."""

    items: list[WorklistItemOut]
    team: str | None
    queue: Literal["today", "all"]
    capacity: int = Field(description="touches per day: the length of today's queue")
    eligible_count: int = Field(description="accounts to work (holds and cool-off left out)")
    today_count: int
    waiting_count: int
    next_cursor: str | None


class RescoreOut(BaseModel):
    """What a rescore did."""

    as_of: dt.date
    accounts: int
    on_hold: int
    model_version: str
    policy_version: str


def summary_line(row: WorklistRow) -> str:
    """Balance, age, payer, last activity and action on one line (no patient data)."""
    age = "age ?" if row.days_in_ar is None else f"{row.days_in_ar} d"
    last = "no activity"
    if row.last_activity_date is not None:
        last = f"last {row.last_activity_type} {row.last_activity_date.isoformat()}"
    return (
        f"{row.claim_id} | ${row.open_balance:,.2f} {row.responsibility} | {age} | "
        f"{row.payer_type} {row.payer_id} | {last} | {row.action}"
    )


def item_out(rank: int, row: WorklistRow, capacity: int) -> WorklistItemOut:
    """The response item of one account."""
    return WorklistItemOut(
        rank=rank,
        in_today_queue=rank <= capacity,
        claim_id=row.claim_id,
        score_id=row.score_id,
        line=summary_line(row),
        open_balance=row.open_balance,
        days_in_ar=row.days_in_ar,
        aging_bucket=row.aging_bucket,
        payer_type=row.payer_type,
        payer_id=row.payer_id,
        responsibility=row.responsibility,  # type: ignore[arg-type]
        last_activity_date=row.last_activity_date,
        last_activity_type=row.last_activity_type,
        probability_collected=row.probability_collected,
        risk_band=row.risk_band,
        expected_recovery=cents_to_dollars(row.expected_recovery_cents),
        action=row.action,
        expected_net_recovery=cents_to_dollars(row.expected_net_recovery_cents),
        expected_net_recovery_per_touch=dollars(row.priority_cents),
        reasons=[WorklistReasonOut(**r) for r in row.reasons],  # type: ignore[arg-type]
        as_of=row.as_of,
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or invalid API key"},
    403: {"description": "the key's role may not read the worklist"},
    422: {"description": "unknown team or a cursor this server did not return"},
    503: {"description": "a store is unavailable"},
}


@router.get("/worklist", response_model=WorklistOut, summary="Today's worklist", responses=ERRORS)
def get_worklist(
    principal: CollectorRole,
    scorer: ScorerDep,
    audit: AuditDep,
    history: HistoryDep,
    worklist_settings: SettingsDep,
    policy: PolicyDep,
    policy_version: PolicyVersionDep,
    today: TodayDep,
    team: Annotated[str | None, Query(description="a team of the policy")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    queue: Annotated[Literal["today", "all"], Query(description="today's queue or all")] = "today",
    capacity: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> WorklistOut:
    """Open balances by expected net recovery per touch, holds and accounts worked within the
    cool-off period left out. The first ``capacity`` (touches per day) are today's queue.
    The worklist is rescored first when the history, the model, the policy or the day changed."""
    filters = None
    if team is not None:
        if team not in policy.teams:
            known = ", ".join(sorted(policy.teams))
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"team: expected one of {known}"
            )
        filters = policy.teams[team]
    try:
        after = None if cursor is None else Cursor.decode(cursor)
    except WorklistError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    engine = history.engine
    if worklist_settings.worklist_rescore_on_read:
        ensure_fresh(
            engine, audit, scorer.loaded, policy, policy_version, today, scorer.risk_band_cuts
        )
    capacity = worklist_settings.worklist_touches_per_day if capacity is None else capacity
    page = WorklistStore(engine).page(
        today=today,
        cool_off_days=worklist_settings.worklist_cool_off_days,
        capacity=capacity,
        limit=limit,
        team=filters,
        cursor=after,
        queue=queue,
    )
    return WorklistOut(
        items=[item_out(rank, row, capacity) for rank, row in page.items],
        team=team,
        queue=queue,
        capacity=capacity,
        eligible_count=page.n_eligible,
        today_count=page.n_today,
        waiting_count=page.n_eligible - page.n_today,
        next_cursor=page.next_cursor,
    )


@router.post("/worklist/rescore", response_model=RescoreOut, summary="Rescore open balances now")
def rescore_worklist(
    principal: AdminRole,
    scorer: ScorerDep,
    audit: AuditDep,
    history: HistoryDep,
    policy: PolicyDep,
    policy_version: PolicyVersionDep,
    today: TodayDep,
) -> RescoreOut:
    """Score every stored open balance as of today with the current model and policy."""
    result = rescore(
        history.engine,
        audit,
        scorer.loaded,
        policy,
        policy_version,
        today,
        risk_band_cuts=scorer.risk_band_cuts,
        trigger="api",
        requester=principal,
    )
    return RescoreOut(
        as_of=result.as_of,
        accounts=result.n_accounts,
        on_hold=result.n_on_hold,
        model_version=result.model_version,
        policy_version=result.policy_version,
    )

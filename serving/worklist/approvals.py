"""Approval as a step of its own: an approver lists the pending write-off requests and approves
or rejects each with a note.

Approving checks the write-off again, on the account's facts as of the day of the approval
(``serving.worklist.current_facts``): a dispute, a financial-assistance application or a payment
that came in since the request stops it (409, the request stays pending for the approver to
reject). Only an approved request becomes a write-off (an ``account_action`` record and row,
naming the request, the collector who asked and the approver). Every step is in the audit chain:
the request (``write_off_request``), the decision (``write_off_decision``, approved or rejected,
with the note) and the write-off. Separation of duties is between users: the approver is a user
of role ``approver`` or ``admin``, never the user who asked, whatever keys they hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from sqlalchemy import Connection

from features.errors import ArscoreError
from features.money import dollars
from serving.access.keys import Principal
from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.policy.config import Policy
from serving.store.engine import write_transaction
from serving.worklist.action_checks import (
    AccountNotFound,
    ActionForbidden,
    ActionRequest,
    ApprovalRequired,
    check_approver,
    check_policy,
)
from serving.worklist.actions import Decided, account_as_of, write_action
from serving.worklist.current_facts import AccountNow, lock_account
from serving.worklist.idempotency import (
    Answer,
    IdempotentCall,
    Render,
    answer_once,
    request_sha256,
)
from serving.worklist.store import APPROVED, PENDING, REJECTED, WRITE_OFF, WorklistRow
from serving.worklist.write_off_requests import (
    WriteOffRequest,
    list_requests,
    mark_decided,
    read_request,
)

DECISION_KIND = "write_off_decision"
DECISION_OPERATION = "write_off_decision"
Decision = Literal["approve", "reject"]
DECISIONS: dict[str, str] = {"approve": APPROVED, "reject": REJECTED}


class RequestNotFound(ArscoreError):
    """No write-off request has this id (404)."""


class RequestConflict(ArscoreError):
    """The request cannot be decided as asked now (409): decided already, or the write-off no
    longer holds on today's facts. ``rule_id`` names the policy rule when one refuses it."""

    def __init__(self, message: str, rule_id: str | None = None, reason: str | None = None):
        self.rule_id, self.reason = rule_id, reason
        super().__init__(message)


@dataclass(frozen=True)
class DecisionRequest:
    """What the approver sends."""

    decision: Decision
    note: str


def _decision_entry(
    request: WriteOffRequest, approver: Principal, decision: DecisionRequest, today: date
) -> AuditEntry:
    return AuditEntry(
        kind=DECISION_KIND,
        requester_key_id=approver.key_id,
        requester_role=approver.role,
        requester_user=approver.user,
        requester_system=approver.system,
        model_name=None,
        model_version=None,
        model_sha256=None,
        policy_version=None,
        claim_id=request.claim_id,
        payload={
            "write_off_request_id": request.request_id,
            "decision": DECISIONS[decision.decision],
            "note": decision.note,
            "decided_on": today,
            "amount": request.amount,
            "category": request.category,
            "requested_by_key_id": request.requester.key_id,
            "requested_by_user": request.requester.user,
            "requested_by_system": request.requester.system,
        },
    )


def _write_off(
    connection: Connection, request: WriteOffRequest, policy: Policy, today: date
) -> tuple[WorklistRow, AccountNow, Decided]:
    """The requested write-off checked again on today's facts: the account, its facts and the
    action to record; RequestConflict when it no longer holds."""
    action = ActionRequest(
        action=WRITE_OFF,
        category=request.category,
        amount=request.amount,
        carc_code=request.carc_code,
        note=request.note,
        override_reason=request.override_reason,
        score_id=request.score_id,
    )
    try:
        account, now = account_as_of(connection, request.claim_id, today)
    except AccountNotFound as error:
        raise RequestConflict(f"the write-off cannot be approved now: {error}") from None
    if request.amount > dollars(now.still_open_cents):
        raise RequestConflict(
            f"the write-off of ${request.amount:,.2f} cannot be approved now: "
            f"${dollars(now.still_open_cents):,.2f} is still open on the account as of {today}"
        )
    try:
        check_policy(action, now.facts, policy)
    except ActionForbidden as refused:
        raise RequestConflict(str(refused), refused.rule_id, refused.sentence) from None
    decided = Decided(
        action,
        request.amount,
        request.override,
        request.recommended_action,
        request.score_id,
        write_off_request_id=request.request_id,
    )
    return account, now, decided


def _decide(
    connection: Connection,
    audit: AuditStore,
    request_id: str,
    decision: DecisionRequest,
    approver: Principal,
    policy: Policy,
    today: date,
) -> WriteOffRequest:
    """Check the approver and the request, then record the decision (and the write-off)."""
    request = read_request(connection, request_id)
    if request is None:
        raise RequestNotFound("no write-off request has this id")
    check_approver(request.requester, approver)
    if request.status != PENDING:
        raise RequestConflict(f"this write-off request was {request.status} already")
    entry = _decision_entry(request, approver, decision, today)
    action_id = None
    if decision.decision == "approve":
        account, now, decided = _write_off(connection, request, policy, today)
        (record,) = audit.append_in(connection, [entry])
        collector = request.requester
        action_id = write_action(
            connection, audit, account, now, decided, collector, approver
        ).action_id
    else:
        (record,) = audit.append_in(connection, [entry])
    status = DECISIONS[decision.decision]
    return mark_decided(
        connection, request, status, approver, decision.note, record.created_at, action_id
    )


def decide(
    request_id: str,
    decision: DecisionRequest,
    *,
    approver: Principal,
    policy: Policy,
    audit: AuditStore,
    today: date,
    render: Render,
    idempotency_key: str | None = None,
) -> Answer:
    """Approve or reject a pending request in one transaction that holds its account's lock,
    and answer with ``render`` of the decided request; a retry with the same
    ``idempotency_key`` gets the same answer."""
    with audit.engine.connect() as connection:
        found = read_request(connection, request_id)
    if found is None:
        raise RequestNotFound("no write-off request has this id")
    call = None
    if idempotency_key is not None:
        fingerprint = request_sha256(DECISION_OPERATION, request_id, vars(decision))
        call = IdempotentCall(approver.scope, idempotency_key, DECISION_OPERATION, fingerprint)
    with write_transaction(audit.engine) as connection:
        lock_account(connection, found.claim_id)
        return answer_once(
            connection,
            call,
            lambda: _decide(connection, audit, request_id, decision, approver, policy, today),
            render,
            audit.clock(),
        )


__all__ = [
    "ApprovalRequired",
    "DecisionRequest",
    "RequestConflict",
    "RequestNotFound",
    "decide",
    "list_requests",
]

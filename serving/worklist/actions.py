"""What a collector did on an account: checked against the policy on today's facts, recorded in
the audit chain and in the actions table in one transaction.

An action names the score it acted on (the account's current score unless the request names
an earlier score of the same claim). Everything below happens in one write transaction that
holds the account's lock (``serving.worklist.current_facts.lock_account``), so decisions on one
account are made one at a time and each sees the ones before it. The action is refused when:

- the claim is not on the worklist, or has no open balance as of today in the stored history
  (404);
- the policy forbids the corresponding policy action on the account's facts *as of today*
  (``serving.worklist.current_facts``: every history write already committed counts, not only
  the facts of the last rescore): 409 with the rule's id and sentence. A write-off category maps
  to its policy action (bad debt -> ``bad_debt_write_off`` ...); an *administrative* write-off
  has no policy action of its own: it is refused on an account the policy holds, on a credit
  balance and where the contract decides (the rule that forbids a small-balance write-off for
  those reasons), and always needs an approver;
- it departs from the recommendation without an ``override_reason`` (422);
- it is a write-off without a category, a note, or a CARC where the category has one
  (contractual, denial) (422), or for more than is still open on the account, earlier
  write-offs recorded here counted (422);
- its approver is not a user of role ``approver`` or ``admin``, or is the requesting user
  (whatever keys they hold) (403).

A write-off above ``write_off_approval_above`` *in total on the account* (what was written off
here before, plus this one), and every administrative write-off, needs an approver: with an
approver's key in the same request (integrations) it is recorded at once; without one it is
filed as pending (``serving.worklist.write_off_requests``) for an approver to decide
(``serving.worklist.approvals``).

A recorded action is one ``account_action`` record of the audit chain (its ``score_id`` is the
action's id, its payload links the ``score_id`` acted on and the facts checked) and one row of
``account_actions``, committed together: the chain is the evidence, the table its index, and a
crash leaves both or neither. With an ``Idempotency-Key`` a retry gets the first answer back
(``serving.worklist.idempotency``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import Connection

from features.money import CENT, dollars
from serving.access.keys import Principal
from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.audit.tables import audit_records
from serving.policy.config import Policy
from serving.store.engine import write_transaction
from serving.worklist.action_checks import (
    AccountNotFound,
    ActionInvalid,
    ActionRequest,
    check_approver,
    check_override,
    check_policy,
    check_shape,
    needs_approval,
    policy_action,
)
from serving.worklist.current_facts import AccountNow, account_now, lock_account
from serving.worklist.idempotency import (
    Answer,
    IdempotentCall,
    Render,
    answer_once,
    request_sha256,
)
from serving.worklist.store import WorklistRow, account_actions, stored_account
from serving.worklist.write_off_requests import WriteOffRequest, file_request

ACTION_KIND = "account_action"
ACTION_OPERATION = "account_action"


@dataclass(frozen=True)
class Decided:
    """An action that passed its checks: what will be recorded, against which score."""

    request: ActionRequest
    amount: Decimal | None
    override: bool
    recommended_action: str
    score_id: str
    write_off_request_id: str | None = None


@dataclass(frozen=True)
class RecordedAction:
    """What was recorded."""

    action_id: str
    claim_id: str
    action: str
    acted_on: date
    recorded_at: datetime
    score_id: str
    recommended_action: str
    override: bool
    amount: Decimal | None
    approver_key_id: str | None
    approver_user: str | None = None
    write_off_request_id: str | None = None


def acted_on_score(connection: Connection, request: ActionRequest, account: WorklistRow) -> str:
    """The score the action acted on: the account's current one, or an earlier one named."""
    if request.score_id is None or request.score_id == account.score_id:
        return account.score_id
    found = connection.execute(
        sa.select(audit_records.c.kind, audit_records.c.claim_id).where(
            audit_records.c.score_id == request.score_id
        )
    ).first()
    if found is None or found.kind != "score" or found.claim_id != account.claim_id:
        raise ActionInvalid(f"score_id: no score of claim {account.claim_id} has this id")
    return request.score_id


def _entry(
    decided: Decided,
    account: WorklistRow,
    now: AccountNow,
    collector: Principal,
    approver: Principal | None,
    action_id: str,
) -> AuditEntry:
    request = decided.request
    payload = {
        "action": request.action,
        "outcome": request.outcome,
        "category": request.category,
        "policy_action": policy_action(request),
        "amount": decided.amount,
        "carc_code": request.carc_code,
        "note": request.note,
        "override": decided.override,
        "override_reason": request.override_reason,
        "recommended_action": decided.recommended_action,
        "score_id": decided.score_id,
        "acted_on": now.as_of,
        "open_balance": dollars(now.open_balance_cents),
        "written_off_before": dollars(now.written_off_cents),
        "still_open": dollars(now.still_open_cents),
        "facts_as_of": now.as_of,
        "facts": now.checked_facts(),
        "approver_key_id": None if approver is None else approver.key_id,
        "approver_role": None if approver is None else approver.role,
        "approver_user": None if approver is None else approver.user,
        "write_off_request_id": decided.write_off_request_id,
    }
    return AuditEntry(
        kind=ACTION_KIND,
        requester_key_id=collector.key_id,
        requester_role=collector.role,
        requester_user=collector.user,
        requester_system=collector.system,
        model_name=account.model_name,
        model_version=account.model_version,
        model_sha256=account.model_sha256,
        policy_version=account.policy_version,
        claim_id=account.claim_id,
        payload=payload,
        score_id=action_id,
    )


def write_action(
    connection: Connection,
    audit: AuditStore,
    account: WorklistRow,
    now: AccountNow,
    decided: Decided,
    collector: Principal,
    approver: Principal | None,
) -> RecordedAction:
    """Record a decided action: its audit record and its row, in the caller's transaction."""
    request, amount = decided.request, decided.amount
    action_id = uuid.uuid4().hex
    entry = _entry(decided, account, now, collector, approver, action_id)
    (record,) = audit.append_in(connection, [entry])
    connection.execute(
        sa.insert(account_actions).values(
            action_id=action_id,
            claim_id=account.claim_id,
            acted_on=now.as_of,
            created_at=record.created_at,
            action=request.action,
            outcome=request.outcome,
            category=request.category,
            carc_code=request.carc_code,
            amount_cents=None if amount is None else int(amount * 100),
            note=request.note,
            override_reason=request.override_reason,
            recommended_action=decided.recommended_action,
            score_id=decided.score_id,
            collector_key_id=collector.key_id,
            collector_user=collector.user,
            collector_system=collector.system,
            approver_key_id=None if approver is None else approver.key_id,
            approver_role=None if approver is None else approver.role,
            approver_user=None if approver is None else approver.user,
            write_off_request_id=decided.write_off_request_id,
            payer_id=account.payer_id,
            payer_type=account.payer_type,
            model_version=account.model_version,
            policy_version=account.policy_version,
            probability_collected=account.probability_collected,
        )
    )
    return RecordedAction(
        action_id=action_id,
        claim_id=account.claim_id,
        action=request.action,
        acted_on=now.as_of,
        recorded_at=record.created_at.astimezone(UTC),
        score_id=decided.score_id,
        recommended_action=decided.recommended_action,
        override=decided.override,
        amount=amount,
        approver_key_id=None if approver is None else approver.key_id,
        approver_user=None if approver is None else approver.user,
        write_off_request_id=decided.write_off_request_id,
    )


def account_as_of(
    connection: Connection, claim_id: str, today: date
) -> tuple[WorklistRow, AccountNow]:
    """The worklist's account and its facts as of today; AccountNotFound without either."""
    account = stored_account(connection, claim_id)
    if account is None:
        raise AccountNotFound("no open balance of this claim on the worklist")
    now = account_now(connection, account, today)
    if now is None:
        raise AccountNotFound(
            f"no open balance of this claim as of {today}: the history sent since the last "
            "rescore closed it"
        )
    return account, now


def _record(
    connection: Connection,
    audit: AuditStore,
    request: ActionRequest,
    claim_id: str,
    requester: Principal,
    approver: Principal | None,
    policy: Policy,
    approval_above: Decimal,
    today: date,
) -> RecordedAction | WriteOffRequest:
    """Check the action on today's facts, then record it, or file it for an approver."""
    account, now = account_as_of(connection, claim_id, today)
    amount = check_shape(request, now)
    check_policy(request, now.facts, policy)
    override = check_override(request, account.action)
    score_id = acted_on_score(connection, request, account)
    decided = Decided(request, amount, override, account.action, score_id)
    if needs_approval(request, amount, dollars(now.written_off_cents), approval_above):
        if approver is None:
            filed = {
                "category": request.category,
                "amount": amount,
                "carc_code": request.carc_code,
                "note": request.note,
                "override": override,
                "override_reason": request.override_reason,
                "score_id": score_id,
                "requested_on": today,
            }
            return file_request(connection, audit, account, now, filed, requester)
        check_approver(requester, approver)
    else:
        approver = None
    return write_action(connection, audit, account, now, decided, requester, approver)


def record_action(
    request: ActionRequest,
    claim_id: str,
    *,
    requester: Principal,
    approver: Principal | None,
    policy: Policy,
    approval_above: Decimal,
    audit: AuditStore,
    today: date,
    render: Render,
    idempotency_key: str | None = None,
) -> Answer:
    """Check and record an action (or file its write-off for approval) in one transaction, and
    answer with ``render`` of what was recorded (a ``RecordedAction`` or a pending
    ``WriteOffRequest``); a retry with the same ``idempotency_key`` gets the same answer."""
    call = None
    if idempotency_key is not None:
        fields = {**vars(request), "approver_key_id": approver and approver.key_id}
        if request.amount is not None:
            fields["amount"] = request.amount.quantize(CENT)
        fingerprint = request_sha256(ACTION_OPERATION, claim_id, fields)
        call = IdempotentCall(requester.scope, idempotency_key, ACTION_OPERATION, fingerprint)
    with write_transaction(audit.engine) as connection:
        lock_account(connection, claim_id)
        return answer_once(
            connection,
            call,
            lambda: _record(
                connection,
                audit,
                request,
                claim_id,
                requester,
                approver,
                policy,
                approval_above,
                today,
            ),  # fmt: skip
            render,
            audit.clock(),
        )

"""Write-offs waiting for an approver: filed, read, listed and marked decided.

A write-off that needs approval and comes without an approver is filed here as *pending* (a row
of ``write_off_requests`` and a ``write_off_request`` record of the audit chain, whose id is the
request's, in one transaction). An approver then approves or rejects it
(``serving.worklist.approvals``); only an approved request becomes a write-off.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from features.money import dollars
from serving.access.keys import Principal
from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.worklist.current_facts import AccountNow
from serving.worklist.store import PENDING, WorklistRow, write_off_requests

REQUEST_KIND = "write_off_request"
PAGE_LIMIT = 500


@dataclass(frozen=True)
class WriteOffRequest:
    """One write-off request as stored: what was asked, by whom, and what became of it."""

    request_id: str
    claim_id: str
    status: str
    requested_on: date
    requested_at: datetime
    requester: Principal
    category: str
    amount: Decimal
    carc_code: str | None
    note: str
    override: bool
    override_reason: str | None
    score_id: str
    recommended_action: str
    written_off_before: Decimal
    still_open: Decimal
    decided_at: datetime | None = None
    decided_by: Principal | None = None
    decision_note: str | None = None
    action_id: str | None = None


@dataclass(frozen=True)
class RequestPage:
    """Requests in the order they were filed, and where the next page starts (None: the end)."""

    items: list[WriteOffRequest]
    next_cursor: str | None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _request(row: Any) -> WriteOffRequest:
    requester = Principal(
        row.requester_key_id, row.requester_role, row.requester_user, row.requester_system
    )
    decided_by = None
    if row.decided_by_key_id is not None:
        decided_by = Principal(row.decided_by_key_id, row.decided_by_role, row.decided_by_user)
    return WriteOffRequest(
        request_id=row.request_id,
        claim_id=row.claim_id,
        status=row.status,
        requested_on=row.requested_on,
        requested_at=_utc(row.requested_at) or row.requested_at,
        requester=requester,
        category=row.category,
        amount=dollars(row.amount_cents),
        carc_code=row.carc_code,
        note=row.note,
        override=bool(row.override),
        override_reason=row.override_reason,
        score_id=row.score_id,
        recommended_action=row.recommended_action,
        written_off_before=dollars(row.written_off_before_cents),
        still_open=dollars(row.still_open_cents),
        decided_at=_utc(row.decided_at),
        decided_by=decided_by,
        decision_note=row.decision_note,
        action_id=row.action_id,
    )


def _entry(filed: WriteOffRequest, account: WorklistRow, now: AccountNow) -> AuditEntry:
    payload = {
        "action": "write_off",
        "category": filed.category,
        "amount": filed.amount,
        "carc_code": filed.carc_code,
        "note": filed.note,
        "override": filed.override,
        "override_reason": filed.override_reason,
        "recommended_action": filed.recommended_action,
        "score_id": filed.score_id,
        "requested_on": filed.requested_on,
        "open_balance": dollars(now.open_balance_cents),
        "written_off_before": filed.written_off_before,
        "still_open": filed.still_open,
        "facts_as_of": now.as_of,
        "facts": now.checked_facts(),
        "status": PENDING,
    }
    return AuditEntry(
        kind=REQUEST_KIND,
        requester_key_id=filed.requester.key_id,
        requester_role=filed.requester.role,
        requester_user=filed.requester.user,
        requester_system=filed.requester.system,
        model_name=account.model_name,
        model_version=account.model_version,
        model_sha256=account.model_sha256,
        policy_version=account.policy_version,
        claim_id=account.claim_id,
        payload=payload,
        score_id=filed.request_id,
    )


def file_request(
    connection: Connection,
    audit: AuditStore,
    account: WorklistRow,
    now: AccountNow,
    filed: dict[str, Any],
    requester: Principal,
) -> WriteOffRequest:
    """File a pending write-off (``filed``: category, amount, carc_code, note, override,
    override_reason, score_id, requested_on) with its audit record, in the caller's transaction."""
    request_id = uuid.uuid4().hex
    pending = WriteOffRequest(
        request_id=request_id,
        claim_id=account.claim_id,
        status=PENDING,
        requested_at=audit.clock(),
        requester=requester,
        recommended_action=account.action,
        written_off_before=dollars(now.written_off_cents),
        still_open=dollars(now.still_open_cents),
        **filed,
    )
    (record,) = audit.append_in(connection, [_entry(pending, account, now)])
    pending = WriteOffRequest(**{**vars(pending), "requested_at": record.created_at})
    values = {
        name: value
        for name, value in vars(pending).items()
        if name not in ("requester", "decided_by", "amount", "written_off_before", "still_open")
    }
    connection.execute(
        sa.insert(write_off_requests).values(
            **values,
            requester_key_id=requester.key_id,
            requester_role=requester.role,
            requester_user=requester.user,
            requester_system=requester.system,
            amount_cents=int(pending.amount * 100),
            written_off_before_cents=now.written_off_cents,
            still_open_cents=now.still_open_cents,
        )
    )
    return pending


def read_request(connection: Connection, request_id: str) -> WriteOffRequest | None:
    """The request with this id, or None."""
    r = write_off_requests
    found = connection.execute(sa.select(r).where(r.c.request_id == request_id)).first()
    return None if found is None else _request(found)


def mark_decided(
    connection: Connection,
    request: WriteOffRequest,
    status: str,
    approver: Principal,
    note: str,
    decided_at: datetime,
    action_id: str | None,
) -> WriteOffRequest:
    """Record the decision on a pending request (the caller holds the account's lock)."""
    r = write_off_requests
    changed = connection.execute(
        sa.update(r)
        .where(r.c.request_id == request.request_id, r.c.status == PENDING)
        .values(
            status=status,
            decided_at=decided_at,
            decided_by_key_id=approver.key_id,
            decided_by_role=approver.role,
            decided_by_user=approver.user,
            decision_note=note,
            action_id=action_id,
        )
    ).rowcount
    if changed != 1:  # the account's lock makes this unreachable; never record a decision twice
        raise RuntimeError(f"write-off request {request.request_id} was not pending")
    decided = {"status": status, "decided_at": decided_at, "decided_by": approver}
    return WriteOffRequest(
        **{**vars(request), **decided, "decision_note": note, "action_id": action_id}
    )


def list_requests(
    engine: Engine, status: str, limit: int, cursor: str | None = None
) -> RequestPage:
    """Requests of one status, oldest first; ``cursor`` is a page's ``next_cursor``."""
    r = write_off_requests
    query = sa.select(r).where(r.c.status == status).order_by(r.c.id).limit(limit + 1)
    if cursor is not None:
        query = query.where(r.c.id > int(cursor))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    more, rows = len(rows) > limit, rows[:limit]
    return RequestPage([_request(row) for row in rows], str(rows[-1].id) if more else None)

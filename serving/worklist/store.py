"""The worklist: the scored open balances the server keeps, in the order collectors work them.

Each open balance is stored once (``worklist_accounts``, replaced whole by each rescore, see
``serving.worklist.rescoring``) with its score, the policy's action and reasons, and the facts the
policy read (so an action can be checked against the same rules later). A page of the worklist
is ordered by expected net recovery per touch (``priority_cents``: the recommendation's expected
net recovery divided by the touches its action takes, in cents; 0 for actions that recover
nothing, such as a write-off or a refund review), then by claim_id. It leaves out accounts on
hold, accounts acted on within the cool-off period, accounts already written off here and
accounts with a write-off waiting for an approver (``write_off_requests``).
A capacity in touches per day cuts the ordering into today's queue (the first ``capacity``
accounts: one touch each today) and the rest, which waits.

Pages are keyset-paged: the cursor is the (priority, claim_id, rank) of the last item sent.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from features.errors import ArscoreError
from features.money import dollars
from serving.policy.config import TeamFilter
from serving.store.engine import write_transaction

WRITE_OFF = "write_off"

_metadata = sa.MetaData()
worklist_accounts = sa.Table(
    "worklist_accounts",
    _metadata,
    sa.Column("claim_id", sa.String, primary_key=True),
    sa.Column("as_of", sa.Date),
    sa.Column("score_id", sa.String(64)),
    sa.Column("scored_at", sa.DateTime(timezone=True)),
    sa.Column("model_name", sa.String),
    sa.Column("model_version", sa.String),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("policy_version", sa.String),
    sa.Column("payer_id", sa.String),
    sa.Column("payer_type", sa.String(32)),
    sa.Column("responsibility", sa.String(16)),
    sa.Column("open_balance_cents", sa.BigInteger),
    sa.Column("days_in_ar", sa.Integer),
    sa.Column("aging_bucket", sa.String(16)),
    sa.Column("last_activity_date", sa.Date),
    sa.Column("last_activity_type", sa.String(32)),
    sa.Column("probability_collected", sa.Float),
    sa.Column("expected_recovery_cents", sa.BigInteger),
    sa.Column("risk_band", sa.String(16)),
    sa.Column("action", sa.String(32)),
    sa.Column("expected_net_recovery_cents", sa.BigInteger),
    sa.Column("touches", sa.Float),
    sa.Column("priority_cents", sa.BigInteger),
    sa.Column("on_hold", sa.Boolean),
    sa.Column("reasons", sa.Text),
    sa.Column("facts", sa.Text),
)
worklist_state = sa.Table(
    "worklist_state",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("history_fingerprint", sa.String(128)),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("policy_version", sa.String),
    sa.Column("as_of", sa.Date),
    sa.Column("rescored_at", sa.DateTime(timezone=True)),
    sa.Column("n_accounts", sa.BigInteger),
)
account_actions = sa.Table(
    "account_actions",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("action_id", sa.String(64)),
    sa.Column("claim_id", sa.String),
    sa.Column("acted_on", sa.Date),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("action", sa.String(32)),
    sa.Column("outcome", sa.String(32)),
    sa.Column("category", sa.String(32)),
    sa.Column("carc_code", sa.String(16)),
    sa.Column("amount_cents", sa.BigInteger),
    sa.Column("note", sa.Text),
    sa.Column("override_reason", sa.Text),
    sa.Column("recommended_action", sa.String(32)),
    sa.Column("score_id", sa.String(64)),
    sa.Column("collector_key_id", sa.String(64)),
    sa.Column("approver_key_id", sa.String(64)),
    sa.Column("approver_role", sa.String(16)),
    sa.Column("payer_id", sa.String),
    sa.Column("payer_type", sa.String(32)),
    sa.Column("model_version", sa.String),
    sa.Column("policy_version", sa.String),
    sa.Column("probability_collected", sa.Float),
    sa.Column("collector_user", sa.String(64)),
    sa.Column("collector_system", sa.String(64)),
    sa.Column("approver_user", sa.String(64)),
    sa.Column("write_off_request_id", sa.String(64)),
)
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
REQUEST_STATUSES = (PENDING, APPROVED, REJECTED)
write_off_requests = sa.Table(  # serving.worklist.approvals
    "write_off_requests",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(32)),
    sa.Column("claim_id", sa.String),
    sa.Column("status", sa.String(16)),
    sa.Column("requested_on", sa.Date),
    sa.Column("requested_at", sa.DateTime(timezone=True)),
    sa.Column("requester_key_id", sa.String(64)),
    sa.Column("requester_role", sa.String(16)),
    sa.Column("requester_user", sa.String(64)),
    sa.Column("requester_system", sa.String(64)),
    sa.Column("category", sa.String(32)),
    sa.Column("amount_cents", sa.BigInteger),
    sa.Column("carc_code", sa.String(16)),
    sa.Column("note", sa.Text),
    sa.Column("override", sa.Boolean),
    sa.Column("override_reason", sa.Text),
    sa.Column("score_id", sa.String(64)),
    sa.Column("recommended_action", sa.String(32)),
    sa.Column("written_off_before_cents", sa.BigInteger),
    sa.Column("still_open_cents", sa.BigInteger),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("decided_by_key_id", sa.String(64)),
    sa.Column("decided_by_role", sa.String(16)),
    sa.Column("decided_by_user", sa.String(64)),
    sa.Column("decision_note", sa.Text),
    sa.Column("action_id", sa.String(64)),
)


class WorklistError(ArscoreError):
    """A worklist request that cannot be answered as asked (the app answers 422)."""


@dataclass(frozen=True)
class WorklistRow:
    """One scored open balance as stored (money in integer cents)."""

    claim_id: str
    as_of: date
    score_id: str
    scored_at: datetime
    model_name: str | None
    model_version: str | None
    model_sha256: str | None
    policy_version: str | None
    payer_id: str
    payer_type: str
    responsibility: str
    open_balance_cents: int
    days_in_ar: int | None
    aging_bucket: str | None
    last_activity_date: date | None
    last_activity_type: str | None
    probability_collected: float | None
    expected_recovery_cents: int | None
    risk_band: str | None
    action: str
    expected_net_recovery_cents: int | None
    touches: float
    priority_cents: int
    on_hold: bool
    reasons: list[dict[str, str]]
    facts: dict[str, Any]

    @property
    def open_balance(self) -> Decimal:
        return dollars(self.open_balance_cents)


@dataclass(frozen=True)
class WorklistState:
    """What the stored worklist was scored from: history, model, policy, day."""

    history_fingerprint: str
    model_sha256: str
    policy_version: str
    as_of: date
    rescored_at: datetime
    n_accounts: int


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last item's priority and claim_id, and its rank (1-based)."""

    priority_cents: int
    claim_id: str
    rank: int

    def encode(self) -> str:
        raw = json.dumps([self.priority_cents, self.claim_id, self.rank], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            priority, claim_id, rank = json.loads(base64.urlsafe_b64decode(padded))
            if not (isinstance(priority, int) and isinstance(claim_id, str)):
                raise ValueError
            if not (isinstance(rank, int) and rank >= 0):
                raise ValueError
        except (ValueError, TypeError, binascii.Error):
            raise WorklistError(
                "cursor: not a cursor this server returned; start again without one"
            ) from None
        return cls(priority, claim_id, rank)


@dataclass(frozen=True)
class WorklistPage:
    """One page: the items with their ranks, whether each is in today's queue, the totals."""

    items: list[tuple[int, WorklistRow]]
    capacity: int
    n_eligible: int
    next_cursor: str | None

    @property
    def n_today(self) -> int:
        return min(self.capacity, self.n_eligible)


def _row_values(row: WorklistRow) -> dict[str, Any]:
    values = dict(row.__dict__)
    values["reasons"] = json.dumps(row.reasons, ensure_ascii=False)
    values["facts"] = json.dumps(row.facts, ensure_ascii=False, default=str)
    return values


def _row(record: Any) -> WorklistRow:
    values = dict(record._mapping)
    values["reasons"] = json.loads(values["reasons"])
    values["facts"] = json.loads(values["facts"])
    values["on_hold"] = bool(values["on_hold"])
    return WorklistRow(**values)


def stored_account(connection: Connection, claim_id: str) -> WorklistRow | None:
    """The stored account of a claim read on ``connection`` (inside a caller's transaction), or
    None when the last rescore found no open balance."""
    found = connection.execute(
        sa.select(worklist_accounts).where(worklist_accounts.c.claim_id == claim_id)
    ).first()
    return None if found is None else _row(found)


class WorklistStore:
    """The stored worklist and the actions recorded on it, on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def replace(self, rows: Sequence[WorklistRow], state: WorklistState) -> None:
        """Put a whole rescore in place of the stored worklist, in one transaction."""
        with write_transaction(self.engine) as connection:
            connection.execute(sa.delete(worklist_accounts))
            values = [_row_values(row) for row in rows]
            for start in range(0, len(values), 5_000):
                connection.execute(sa.insert(worklist_accounts), values[start : start + 5_000])
            connection.execute(sa.delete(worklist_state))
            connection.execute(sa.insert(worklist_state).values(id=1, **state.__dict__))

    def state(self) -> WorklistState | None:
        """What the stored worklist was scored from, or None before the first rescore."""
        with self.engine.connect() as connection:
            found = connection.execute(sa.select(worklist_state)).first()
        if found is None:
            return None
        values = {k: v for k, v in found._mapping.items() if k != "id"}
        return WorklistState(**values)

    def account(self, claim_id: str) -> WorklistRow | None:
        """The stored account of a claim, or None when it has no open balance here."""
        with self.engine.connect() as connection:
            return stored_account(connection, claim_id)

    def _eligible(self, team: TeamFilter | None, today: date, cool_off_days: int) -> Any:
        """The WHERE clause of accounts a collector may work today."""
        w, a = worklist_accounts, account_actions
        since = today - timedelta(days=cool_off_days)
        recent = (
            sa.select(a.c.claim_id)
            .where(a.c.claim_id == w.c.claim_id)
            .where(sa.or_(a.c.acted_on > since, a.c.action == WRITE_OFF))
        )
        r = write_off_requests
        pending = sa.select(r.c.claim_id).where(r.c.claim_id == w.c.claim_id, r.c.status == PENDING)
        clauses = [w.c.on_hold.is_(False), ~sa.exists(recent), ~sa.exists(pending)]
        if team is not None and team.payer_types is not None:
            clauses.append(w.c.payer_type.in_(list(team.payer_types)))
        if team is not None and team.responsibility is not None:
            clauses.append(w.c.responsibility.in_(list(team.responsibility)))
        return sa.and_(*clauses)

    def page(
        self,
        *,
        today: date,
        cool_off_days: int,
        capacity: int,
        limit: int,
        team: TeamFilter | None = None,
        cursor: Cursor | None = None,
        queue: Literal["today", "all"] = "today",
    ) -> WorklistPage:
        """A page of the worklist in priority order (see the module docstring)."""
        w = worklist_accounts
        eligible = self._eligible(team, today, cool_off_days)
        rank = 0 if cursor is None else cursor.rank
        wanted = limit if queue == "all" else max(0, min(limit, capacity - rank))
        query = sa.select(w).where(eligible)
        if cursor is not None:
            query = query.where(
                sa.or_(
                    w.c.priority_cents < cursor.priority_cents,
                    sa.and_(
                        w.c.priority_cents == cursor.priority_cents,
                        w.c.claim_id > cursor.claim_id,
                    ),
                )
            )
        query = query.order_by(w.c.priority_cents.desc(), w.c.claim_id).limit(wanted + 1)
        with self.engine.connect() as connection:
            n_eligible = connection.execute(
                sa.select(sa.func.count()).select_from(w).where(eligible)
            ).scalar_one()
            found = [_row(r) for r in connection.execute(query)] if wanted else []
        more, rows = len(found) > wanted, found[:wanted]
        if queue == "today":
            more = more and rank + len(rows) < capacity
        items = [(rank + i + 1, row) for i, row in enumerate(rows)]
        next_cursor = None
        if more and items:
            last_rank, last = items[-1]
            next_cursor = Cursor(last.priority_cents, last.claim_id, last_rank).encode()
        return WorklistPage(items, capacity, int(n_eligible), next_cursor)

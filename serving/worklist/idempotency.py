"""Client retries answered once: the ``Idempotency-Key`` of an action or an approval decision.

A client that did not get an answer (a timeout, a dropped connection) sends the same request again
with the same key. The first request that records something stores its answer (status and body,
byte for byte) in the transaction that records it; a retry finds it and gets that answer back,
and nothing is recorded twice. A key is the caller's own: it is scoped to the user (or the system,
or the key of no one) that sent it, so two users' keys never collide. A key sent again with a
different request (another account, body, approver or route) is refused, and so is a key whose
first request is still being recorded. Requests refused without recording anything (a policy
refusal, a missing field) store nothing: a retry is checked again on the facts of its time.
Stored answers are kept: they are small and make a late retry safe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from features.errors import ArscoreError
from serving.audit.records import canonical_json

KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""What an Idempotency-Key may be: 1 to 128 of letters, digits, '_', '.', ':', '-' (a UUID
fits)."""

T = TypeVar("T")
Render = Callable[[Any], tuple[int, bytes]]

_metadata = sa.MetaData()
idempotent_responses = sa.Table(
    "idempotent_responses",
    _metadata,
    sa.Column("scope", sa.String(80), primary_key=True),
    sa.Column("idempotency_key", sa.String(128), primary_key=True),
    sa.Column("operation", sa.String(32)),
    sa.Column("request_sha256", sa.String(64)),
    sa.Column("status_code", sa.Integer),
    sa.Column("body", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)


class IdempotencyKeyReused(ArscoreError):
    """The key came with another request before (the app answers 422)."""


class IdempotencyKeyInUse(ArscoreError):
    """Another request with this key is being recorded right now (409): retry."""


@dataclass(frozen=True)
class IdempotentCall:
    """One request that carries an Idempotency-Key: whose key, the key, what it asks."""

    scope: str
    key: str
    operation: str
    request_sha256: str


@dataclass(frozen=True)
class Answer:
    """What to send back: status and body; ``replayed`` when it is the stored answer of a retry."""

    status_code: int
    body: bytes
    replayed: bool = False


def request_sha256(operation: str, target: str, request: dict[str, Any]) -> str:
    """The fingerprint of a request: its operation, its target (claim or request id) and every
    field that decides what it records (body, approver)."""
    text = canonical_json({"operation": operation, "target": target, "request": request})
    return hashlib.sha256(text).hexdigest()


def replay(connection: Connection, call: IdempotentCall) -> Answer | None:
    """The stored answer of this call's key, or None when the key is new; raises
    IdempotencyKeyReused when the key came with another request."""
    t = idempotent_responses
    found = connection.execute(
        sa.select(t.c.operation, t.c.request_sha256, t.c.status_code, t.c.body).where(
            t.c.scope == call.scope, t.c.idempotency_key == call.key
        )
    ).first()
    if found is None:
        return None
    if (found.operation, found.request_sha256) != (call.operation, call.request_sha256):
        raise IdempotencyKeyReused(
            "Idempotency-Key: this key was sent before with another request; use a new key for "
            "a new request"
        )
    return Answer(int(found.status_code), found.body.encode("utf-8"), replayed=True)


def remember(connection: Connection, call: IdempotentCall, answer: Answer, now: datetime) -> None:
    """Store the answer of a call (in the transaction that records what it answers); raises
    IdempotencyKeyInUse when a concurrent request with the same key stored its answer first (the
    caller's transaction then rolls back, recording nothing)."""
    try:
        connection.execute(
            sa.insert(idempotent_responses).values(
                scope=call.scope,
                idempotency_key=call.key,
                operation=call.operation,
                request_sha256=call.request_sha256,
                status_code=answer.status_code,
                body=answer.body.decode("utf-8"),
                created_at=now,
            )
        )
    except IntegrityError:
        raise IdempotencyKeyInUse(
            "Idempotency-Key: another request with this key was recorded meanwhile; retry to get "
            "its answer"
        ) from None


def answer_once(
    connection: Connection,
    call: IdempotentCall | None,
    record: Callable[[], T],
    render: Render,
    now: datetime,
) -> Answer:
    """The stored answer of a retry, or ``record()`` rendered, stored under the call's key and
    returned; all inside the caller's transaction, so the answer commits with what it records."""
    if call is not None:
        stored = replay(connection, call)
        if stored is not None:
            return stored
    status_code, body = render(record())
    answer = Answer(status_code, body)
    if call is not None:
        remember(connection, call, answer, now)
    return answer

"""Users: the people behind API keys, so that records and separation of duties name persons.

A user has a username (lower-case, fixed for life: audit records name it), a display name, one
role (a key issued to the user acts in it), an active flag and the times the user was created and
disabled. Disabling a user stops every key issued to them (``serving.access.keys`` checks the
flag at authentication); a disabled user is kept, never deleted, so old records still name
someone. The table is ready for the web app's sign-in: it adds a password hash beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from features.errors import ArscoreError
from serving.store.engine import write_transaction

ROLES = ("scorer", "collector", "auditor", "admin", "approver")
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""Usernames and system names: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or
digit (no e-mail addresses or names of patients: they land in every record)."""
DISPLAY_NAME_MAX = 200

_NAME = re.compile(NAME_PATTERN)
_metadata = sa.MetaData()
users = sa.Table(
    "users",
    _metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(DISPLAY_NAME_MAX)),
    sa.Column("role", sa.String(16)),
    sa.Column("active", sa.Boolean),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
)


class UserError(ArscoreError):
    """A user cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True)
class User:
    """One user as stored."""

    username: str
    display_name: str
    role: str
    active: bool
    created_at: datetime
    disabled_at: datetime | None


def check_name(name: str, what: str) -> str:
    """``name`` if it is a valid username or system name, else UserError saying what is valid."""
    if not _NAME.fullmatch(name):
        raise UserError(
            f"{what} {name!r}: expected 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a "
            "letter or digit"
        )
    return name


def check_role(role: str) -> str:
    """``role`` if arscore knows it, else UserError listing the roles."""
    if role not in ROLES:
        raise UserError(f"unknown role '{role}': expected one of {', '.join(ROLES)}")
    return role


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _user(row: sa.Row) -> User:
    return User(
        username=row.username,
        display_name=row.display_name or "",
        role=row.role,
        active=bool(row.active),
        created_at=_as_utc(row.created_at) or row.created_at,
        disabled_at=_as_utc(row.disabled_at),
    )


class UserStore:
    """Create, list, read and disable users."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.engine = engine
        self.clock = clock

    def create(self, username: str, role: str, display_name: str = "") -> User:
        """A new active user; UserError if the name is taken (by an active or disabled user)."""
        check_name(username, "username")
        check_role(role)
        display_name = display_name.strip()
        if len(display_name) > DISPLAY_NAME_MAX:
            raise UserError(f"display name: at most {DISPLAY_NAME_MAX} characters")
        created = User(username, display_name, role, True, self.clock(), None)
        try:
            with write_transaction(self.engine) as connection:
                connection.execute(sa.insert(users).values(**vars(created)))
        except IntegrityError:
            raise UserError(
                f"user '{username}' already exists (usernames are never reused)"
            ) from None
        return created

    def get(self, username: str) -> User | None:
        """The user, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(users.c.username == username)).first()
        return None if row is None else _user(row)

    def list(self) -> list[User]:
        """Every user, active or not, by username."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(users).order_by(users.c.username)).all()
        return [_user(row) for row in rows]

    def disable(self, username: str) -> bool:
        """Disable an active user (their keys stop working); False if unknown or disabled."""
        with write_transaction(self.engine) as connection:
            changed = connection.execute(
                sa.update(users)
                .where(users.c.username == username, users.c.active.is_(True))
                .values(active=False, disabled_at=self.clock())
            ).rowcount
        return bool(changed)

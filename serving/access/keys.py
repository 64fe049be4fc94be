"""API keys: who may call the server, in which role, on whose behalf.

A key is issued to a user (``serving.access.users``: it acts in the user's role, and stops working
when the user is disabled) or to a system integration (an RCM system, named; the key has its own
role). Keys created before users existed belong to no one: they keep working, their records name
only the key, and they cannot approve (an approval is a person's). A token is
``ars_<key_id>_<secret>``; only its sha256 is stored. A verified token is kept in a
small in-process LRU cache so a request costs no database round-trip after the first. Because
several worker processes each hold a cache, a revocation made elsewhere takes effect in a process
once its cache entry is older than ``cache_ttl_seconds`` (60 s by default); a revocation through
the same KeyStore takes effect at once. Disabling a user (``arscore users disable``) reaches a
running server the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import Engine

from features.errors import ArscoreError
from serving.access.users import ROLES, UserError, check_name, check_role, users
from serving.store.engine import write_transaction

ADMIN = "admin"
TOKEN_PREFIX = "ars"
KEY_ID_BYTES = 8
SECRET_BYTES = 32
DEFAULT_CACHE_SIZE = 1024
DEFAULT_CACHE_TTL_SECONDS = 60.0

_metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys",
    _metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("role", sa.String(16)),
    sa.Column("label", sa.String),
    sa.Column("token_sha256", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("username", sa.String(64)),
    sa.Column("system_name", sa.String(64)),
)


class AccessDenied(ArscoreError):
    """Base class: the request may not proceed."""


class NotAuthenticated(AccessDenied):
    """No valid API key was presented (the app answers 401)."""


class RoleForbidden(AccessDenied):
    """The key is valid but its role may not do this (the app answers 403)."""


@dataclass(frozen=True)
class Principal:
    """The caller behind a verified token: the key, its role, and the user or the system it was
    issued to (neither for a key made before users existed)."""

    key_id: str
    role: str
    user: str | None = None
    system: str | None = None

    @property
    def scope(self) -> str:
        """Who this is, as one text: ``user:NAME``, ``system:NAME`` or ``key:KEY_ID``."""
        if self.user is not None:
            return f"user:{self.user}"
        if self.system is not None:
            return f"system:{self.system}"
        return f"key:{self.key_id}"


@dataclass(frozen=True)
class ApiKeyInfo:
    """What ``keys list`` shows of a key: never its token or hash."""

    key_id: str
    role: str
    label: str
    created_at: datetime
    revoked_at: datetime | None
    user: str | None = None
    system: str | None = None


def token_sha256(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_token(token: str) -> str | None:
    """The key_id a token names, or None when it is not shaped like an arscore token."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def require_role(principal: Principal | None, *roles: str) -> Principal:
    """The principal if its role is ``admin`` or one of ``roles`` (no roles: admin only);
    otherwise NotAuthenticated (no principal) or RoleForbidden. Same rule as serving.api.deps."""
    unknown = [role for role in roles if role not in ROLES]
    if unknown:
        raise ValueError(f"require_role takes roles among {', '.join(ROLES)}, got {unknown}")
    if principal is None:
        raise NotAuthenticated("a valid API key is required")
    if principal.role != ADMIN and principal.role not in roles:
        needed = " or ".join((*roles, ADMIN))
        raise RoleForbidden(f"role '{principal.role}' may not do this (needs {needed})")
    return principal


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class KeyStore:
    """Create, authenticate, revoke and list API keys."""

    def __init__(
        self,
        engine: Engine,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.engine = engine
        self.cache_size = cache_size
        self.cache_ttl_seconds = cache_ttl_seconds
        self.clock = clock
        self.monotonic = monotonic
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def create(
        self,
        role: str | None = None,
        label: str = "",
        *,
        user: str | None = None,
        system: str | None = None,
    ) -> tuple[str, str]:
        """A new key: returns (key_id, token); the token is shown only this once.

        ``user``: issued to that active user, in the user's role (``role`` may be left out, or
        must be the user's). ``system``: issued to that integration, in ``role``. Neither: a key
        of no one, as keys were before users (``arscore keys create`` always names an owner)."""
        if user is not None and system is not None:
            raise ArscoreError("a key is issued to a user or to a system, not both")
        if system is not None:
            check_name(system, "system name")
        key_id = secrets.token_hex(KEY_ID_BYTES)
        token = f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
        with write_transaction(self.engine) as connection:
            if user is not None:
                role = self._user_role(connection, user, role)
            if role is None:
                raise ArscoreError(f"a key needs a role: one of {', '.join(ROLES)}")
            check_role(role)
            connection.execute(
                sa.insert(api_keys).values(
                    key_id=key_id,
                    role=role,
                    label=label,
                    token_sha256=token_sha256(token),
                    created_at=self.clock(),
                    username=user,
                    system_name=system,
                )
            )
        return key_id, token

    @staticmethod
    def _user_role(connection: sa.Connection, username: str, role: str | None) -> str:
        """The role a key of this user gets: the user's; UserError if the user is unknown or
        disabled, or ``role`` names another role."""
        found = connection.execute(
            sa.select(users.c.role, users.c.active).where(users.c.username == username)
        ).first()
        if found is None:
            raise UserError(f"no user '{username}': create it first (arscore users create)")
        if not found.active:
            raise UserError(f"user '{username}' is disabled: no new keys")
        if role is not None and role != found.role:
            raise UserError(
                f"user '{username}' has the role '{found.role}': a key of theirs acts in it, "
                f"not in '{role}'"
            )
        return str(found.role)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of a valid, unrevoked token; None for anything else."""
        if not token:
            return None
        key_id = parse_token(token)
        if key_id is None:
            return None
        digest = token_sha256(token)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        query = (
            sa.select(
                api_keys.c.role,
                api_keys.c.token_sha256,
                api_keys.c.revoked_at,
                api_keys.c.username,
                api_keys.c.system_name,
                users.c.role.label("user_role"),
                users.c.active,
            )
            .select_from(api_keys.outerjoin(users, users.c.username == api_keys.c.username))
            .where(api_keys.c.key_id == key_id)
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None or row.revoked_at is not None:
            return None
        if row.username is not None and not row.active:
            return None  # a disabled (or, by a hand edit, missing) user's key
        if not hmac.compare_digest(row.token_sha256.encode("ascii"), digest.encode("ascii")):
            return None
        role = row.role if row.username is None else row.user_role
        principal = Principal(key_id, role, row.username, row.system_name)
        self._remember(digest, principal)
        return principal

    def _cached(self, digest: str) -> Principal | None:
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None:
                return None
            principal, verified_at = hit
            if self.monotonic() - verified_at > self.cache_ttl_seconds:
                del self._cache[digest]
                return None
            self._cache.move_to_end(digest)
            return principal

    def _remember(self, digest: str, principal: Principal) -> None:
        with self._lock:
            self._cache[digest] = (principal, self.monotonic())
            self._cache.move_to_end(digest)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; True if it was active, False if unknown or already revoked."""
        with write_transaction(self.engine) as connection:
            revoked = connection.execute(
                sa.update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            ).rowcount
        self._forget(lambda principal: principal.key_id == key_id)
        return bool(revoked)

    def forget_user(self, username: str) -> None:
        """Drop the cached keys of a user (just disabled) so this process stops them at once."""
        self._forget(lambda principal: principal.user == username)

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        with self._lock:
            for digest in [d for d, (p, _) in self._cache.items() if matches(p)]:
                del self._cache[digest]

    def list(self) -> list[ApiKeyInfo]:
        """Every key, oldest first, without tokens."""
        query = sa.select(
            api_keys.c.key_id,
            api_keys.c.role,
            api_keys.c.label,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
            api_keys.c.username,
            api_keys.c.system_name,
        ).order_by(api_keys.c.created_at, api_keys.c.key_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            ApiKeyInfo(
                key_id=row.key_id,
                role=row.role,
                label=row.label,
                created_at=_as_utc(row.created_at) or row.created_at,
                revoked_at=_as_utc(row.revoked_at),
                user=row.username,
                system=row.system_name,
            )
            for row in rows
        ]

"""What the audit trail holds: record types, the canonical JSON of a payload and the chained hash.

Every record carries ``record_hash = sha256(canonical JSON of all its fields, prev_hash and seq
included)`` and the hash of the record before it (``GENESIS_HASH`` for the first).

Fields added to records after the first trails were written (``ADDED_FIELDS``: the user or the
system behind the requester's key) enter the hashed JSON only when they hold a value. A record
written before they existed has them empty, so its hash is computed over exactly the fields it
was written with and still verifies; a record written since with a user has the user under its
hash, so removing or changing the name breaks the chain like any other alteration.
"""

from __future__ import annotations

import hashlib
import operator
import os
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from time import time_ns
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

GENESIS_HASH = "0" * 64


PURGE_KIND = "audit_purge"


FORBIDDEN_PAYLOAD_KEYS = frozenset({"patient_id"})


Problem = Literal["altered", "removed", "inserted"]


def utc_now() -> datetime:
    """The current time in UTC (the default clock of the store; tests inject their own)."""
    return datetime.now(UTC)


class AuditError(Exception):
    """Base class of the audit store's errors."""


class AuditUnavailable(AuditError):
    """The audit database could not record or read; nothing was written (the app answers 503)."""


class DuplicateScoreId(AuditError, ValueError):
    """A caller-supplied score_id is already recorded; nothing was written."""


class AuditChainBroken(AuditError):
    """The chain does not verify, so a purge would destroy evidence; nothing was deleted."""


@dataclass(frozen=True)
class AuditEntry:
    """What a caller records: who asked (the key, its role, and the user or system it was issued
    to), which model and policy, which account, what was seen."""

    kind: str
    requester_key_id: str | None
    requester_role: str | None
    model_name: str | None
    model_version: str | None
    model_sha256: str | None
    policy_version: str | None
    claim_id: str | None
    payload: dict[str, Any]
    score_id: str | None = None
    requester_user: str | None = None
    requester_system: str | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One stored record of the chain."""

    seq: int
    score_id: str
    created_at: datetime
    kind: str
    requester_key_id: str | None
    requester_role: str | None
    model_name: str | None
    model_version: str | None
    model_sha256: str | None
    policy_version: str | None
    claim_id: str | None
    payload: dict[str, Any]
    prev_hash: str
    record_hash: str
    requester_user: str | None = None
    requester_system: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of a chain verification; on failure names the first bad record and what is wrong."""

    ok: bool
    n_records: int
    first_bad_seq: int | None = None
    problem: Problem | None = None
    message: str = ""
    last_seq: int = 0
    last_hash: str = GENESIS_HASH


HASHED_FIELDS = tuple(f.name for f in fields(AuditRecord) if f.name != "record_hash")


ADDED_FIELDS = ("requester_user", "requester_system")
"""Hashed only when not None (see the module docstring): records older than them verify."""


EXPORT_COLUMNS = tuple(f.name for f in fields(AuditRecord))


_hashed_values = operator.itemgetter(*HASHED_FIELDS)


_CANONICAL_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


_HASH_PIECE = 2_047  # below hashlib's HASHLIB_GIL_MINSIZE (2,048 bytes)


_FORBIDDEN_KEY_TEXTS = tuple(f'"{key}":'.encode() for key in FORBIDDEN_PAYLOAD_KEYS)


def canonical_json(value: Any) -> bytes:
    """The one JSON text of a value (UTF-8 bytes): keys sorted at every level, no whitespace,
    non-finite numbers as null, Decimal as its exact string, dates in ISO 8601.

    orjson writes it: a score's payload holds some sixty values and every score of a batch is
    recorded before the response, so the text is made once per record, in C."""
    try:
        return orjson.dumps(value, default=_json_default, option=_CANONICAL_OPTIONS)
    except orjson.JSONEncodeError as error:
        raise TypeError(f"not JSON: {error}") from None


def _json_default(value: Any) -> Any:
    """What orjson does not know natively: Decimal (exact string), pandas' missing values."""
    if isinstance(value, Decimal):
        return str(value)
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, date):  # pd.Timestamp
        return value.isoformat()
    raise TypeError(f"type {type(value).__name__} is not JSON serializable")


def record_hash(record: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a record's fields (all but record_hash itself)."""
    return _chained_hash(record, _iso_utc(record["created_at"]), canonical_json(record["payload"]))


def _chained_hash(record: dict[str, Any], created_at: str, payload_text: bytes) -> str:
    """``record_hash`` with the payload's canonical text given (an append makes it once) and
    embedded as is: the canonical JSON of the record has the payload's own canonical text."""
    hashed = dict(zip(HASHED_FIELDS, _hashed_values(record), strict=True))
    for name in ADDED_FIELDS:
        if hashed[name] is None:
            del hashed[name]
    hashed["created_at"] = created_at
    hashed["payload"] = orjson.Fragment(payload_text)
    return sha256_hex(orjson.dumps(hashed, option=_CANONICAL_OPTIONS))


def sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, fed in pieces that keep the GIL.

    hashlib lets go of the GIL for 2,048 bytes or more, and a record is ~2 KB. An append chains
    its records while it holds the trail's write lock, which every worker process waits on. Each
    release hands the GIL to another busy request thread of the process for up to the switch
    interval (5 ms): 1,000 records took 2 ms alone and about 400 ms beside one busy thread."""
    if len(data) < _HASH_PIECE:
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    view = memoryview(data)
    for start in range(0, len(view), _HASH_PIECE):
        digest.update(view[start : start + _HASH_PIECE])
    return digest.hexdigest()


def _payload_text(payload: dict[str, Any], where: str) -> bytes:
    """A payload's canonical text; refuses a raw patient identifier as a key at any depth.

    Inside the JSON text a key is the only place ``"patient_id":`` can occur (a quote within a
    string value is escaped), so the check is a search of the lowercased text."""
    try:
        text = canonical_json(payload)
    except TypeError as error:
        raise TypeError(f"{where}: payload {error}") from None
    lowered = text.lower()
    for forbidden in _FORBIDDEN_KEY_TEXTS:
        if forbidden in lowered:
            key = forbidden.decode()[1:-2]
            raise ValueError(f"{where}: payload key '{key}' is a raw patient identifier")
    return text


def _iso_utc(moment: datetime) -> str:
    return _as_utc(moment).isoformat(timespec="microseconds")


def _as_utc(moment: datetime) -> datetime:
    """Stored timestamps are UTC; SQLite hands them back without a zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def new_score_ids(count: int, now_ns: int | None = None) -> list[str]:
    """``count`` random, time-ordered UUIDs (version 7, RFC 9562) as 32 hex digits.

    The first 48 bits are the Unix time in milliseconds, the other 74 free bits come from one
    read of the OS's random source. New ids land at the end of the unique score_id index instead
    of on random pages of it, so a large append dirties a few index pages instead of one per
    score (``bench/bench_audit_append.py`` measures both kinds of id side by side)."""
    if count == 0:
        return []
    millis = (time_ns() if now_ns is None else now_ns) // 1_000_000
    raw = np.frombuffer(os.urandom(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, :6] = np.frombuffer(millis.to_bytes(6, "big"), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70  # version 7
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 9562 variant
    text = raw.tobytes().hex()
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


def _record(row: Any) -> AuditRecord:
    values = dict(row._mapping)
    values["created_at"] = _as_utc(values["created_at"])
    try:
        values["payload"] = orjson.loads(values["payload"])
    except (TypeError, ValueError):  # only a hand-edited row gets here; its hash will not match
        values["payload"] = {"unparseable_payload": str(values["payload"])}
    return AuditRecord(**values)

"""The compliance record: an append-only, hash-chained audit trail of scores and decisions.

Every record carries ``record_hash = sha256(canonical JSON of all its fields, prev_hash and seq
included)`` and the hash of the record before it (64 zeros for the first). Appends take the
chain head under a lock (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on the one-row
head table on PostgreSQL), so threads and worker processes extend one unbroken chain.

The application has no way to change or remove a record except :meth:`AuditStore.purge_expired`,
and database triggers refuse UPDATE and DELETE on ``audit_records``. Someone with direct database
access can still drop or bypass the triggers (SQLite: ``DROP TRIGGER``; PostgreSQL: a superuser's
``SET session_replication_role = replica`` or ``ALTER TABLE ... DISABLE TRIGGER``); what they
change is then caught by :meth:`AuditStore.verify`. A rewrite of the whole chain from some record
onwards *including* the head row is only detectable against a copy of the head hash kept
elsewhere: ``arscore audit verify`` prints it, keep it outside the database.

A purge deletes the oldest records (a prefix of the chain) and leaves a purge anchor (the seq and
hash of the last purged record) plus a chained ``audit_purge`` record naming that anchor, so the
remaining chain still verifies from its first record.

Appends of one process are committed in groups: while one thread's transaction is being written,
the appends other threads bring wait, and the next of them writes all those waiting in one
transaction (group commit). Each caller still returns only once its own records are committed,
and an append's records are never split between transactions. A failed group commit writes
nothing; an error of the database as a whole then fails every append of the group, any other
one has each append written alone, so only the one at fault fails. On SQLite the commit
(fsync) is serialized across every worker, so one transaction per append capped single-score
requests at one commit each, whatever the number of workers.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import operator
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from time import time_ns
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from serving.db import is_sqlite, snapshot_transaction, write_transaction
from serving.db_bulk import DriverInsert

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
PURGE_KIND = "audit_purge"
FORBIDDEN_PAYLOAD_KEYS = frozenset({"patient_id"})
EXPORT_CHUNK_ROWS = 5_000
GROUP_MAX_RECORDS = 10_000  # records per group commit (an append larger than this goes alone)
Problem = Literal["altered", "removed", "inserted"]

_metadata = sa.MetaData()
audit_records = sa.Table(
    "audit_records",
    _metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("score_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("kind", sa.String(32)),
    sa.Column("requester_key_id", sa.String(64)),
    sa.Column("requester_role", sa.String(16)),
    sa.Column("model_name", sa.String),
    sa.Column("model_version", sa.String),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("policy_version", sa.String),
    sa.Column("claim_id", sa.String),
    sa.Column("payload", sa.Text),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("record_hash", sa.String(64)),
)
audit_chain_head = sa.Table(
    "audit_chain_head",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("last_seq", sa.BigInteger),
    sa.Column("last_hash", sa.String(64)),
)
audit_purge_anchors = sa.Table(
    "audit_purge_anchors",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("purged_at", sa.DateTime(timezone=True)),
    sa.Column("cutoff_date", sa.Date),
    sa.Column("purged_through_seq", sa.BigInteger),
    sa.Column("last_purged_hash", sa.String(64)),
    sa.Column("n_purged", sa.BigInteger),
    sa.Column("purge_record_seq", sa.BigInteger),
)
audit_guard = sa.Table(  # SQLite only; PostgreSQL uses the setting arscore.audit_purge
    "audit_guard",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("purge_allowed", sa.Integer),
)


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
    """What a caller records: who asked, which model and policy, which account, what was seen."""

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


def _prepared(entry: AuditEntry, index: int, fresh_id: str) -> dict[str, Any]:
    """The stored fields of an entry, without seq, time and hashes (which the chain assigns);
    ``fresh_id`` is its score_id unless it brings one."""
    where = f"audit entry {index}"
    if not entry.kind or len(entry.kind) > 32:
        raise ValueError(f"{where}: kind must be 1 to 32 characters, got {entry.kind!r}")
    if not isinstance(entry.payload, dict):
        raise TypeError(f"{where}: payload must be a dict")
    score_id = entry.score_id or fresh_id
    if len(score_id) > 64:
        raise ValueError(f"{where}: score_id longer than 64 characters")
    payload_text = _payload_text(entry.payload, where)
    return {
        "score_id": score_id,
        "kind": entry.kind,
        "requester_key_id": entry.requester_key_id,
        "requester_role": entry.requester_role,
        "model_name": entry.model_name,
        "model_version": entry.model_version,
        "model_sha256": entry.model_sha256,
        "policy_version": entry.policy_version,
        "claim_id": entry.claim_id,
        "payload_text": payload_text,
    }


def _appended(row: dict[str, Any]) -> AuditRecord:
    """The record of a row just written (its payload parsed back from the stored text)."""
    return AuditRecord(**{**row, "payload": orjson.loads(row["payload"])})


def _record(row: Any) -> AuditRecord:
    values = dict(row._mapping)
    values["created_at"] = _as_utc(values["created_at"])
    try:
        values["payload"] = orjson.loads(values["payload"])
    except (TypeError, ValueError):  # only a hand-edited row gets here; its hash will not match
        values["payload"] = {"unparseable_payload": str(values["payload"])}
    return AuditRecord(**values)


def _unavailable(action: str, exc: BaseException) -> AuditUnavailable:
    """An AuditUnavailable naming the database's complaint, never the statement's parameters."""
    reason = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
    reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    logger.error("audit store unavailable while %s: %s", action, reason)
    return AuditUnavailable(f"audit store unavailable while {action}: {reason}")


class _Append:
    """One caller's prepared records waiting for a group commit, and what came of them."""

    def __init__(self, prepared: list[dict[str, Any]]):
        self.prepared = prepared
        self.rows: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.done = False

    def fail(self, error: BaseException) -> None:
        """Record the error; each caller gets its own copy of an audit error (raised in its own
        thread), chained to the one the database raised."""
        if isinstance(error, AuditError):
            copy = type(error)(*error.args)
            copy.__cause__ = error.__cause__
            error = copy
        self.error = error
        self.done = True


class AuditStore:
    """Append-only, tamper-evident audit trail on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utc_now):
        self.engine = engine
        self.clock = clock
        self._db_errors: tuple[type[BaseException], ...] = (SQLAlchemyError,)
        dbapi = getattr(engine.dialect, "loaded_dbapi", None)
        self._integrity_errors: tuple[type[BaseException], ...] = (IntegrityError,)
        if dbapi is not None:
            self._db_errors += (dbapi.Error,)
            self._integrity_errors += (dbapi.IntegrityError,)
        self._insert = DriverInsert(audit_records, engine)
        self._write_lock = threading.Lock()  # one group commit at a time in this process
        self._waiting_lock = threading.Lock()
        self._waiting: list[_Append] = []

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the audit clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Record entries in one transaction, all or nothing; AuditUnavailable if the DB fails."""
        return [_appended(row) for row in self._append(entries)]

    def append_ids(self, entries: Sequence[AuditEntry]) -> list[str]:
        """``append``, returning only the score_ids in order: a batch of scores needs no more,
        and parsing every payload back for its record cost ~30 ms per 1,000 scores."""
        return [row["score_id"] for row in self._append(entries)]

    def _append(self, entries: Sequence[AuditEntry]) -> list[dict[str, Any]]:
        """The rows written for the entries (payload as stored text), in order."""
        fresh = new_score_ids(len(entries))
        prepared = [_prepared(entry, i, fresh[i]) for i, entry in enumerate(entries)]
        if not prepared:
            return []
        score_ids = [p["score_id"] for p in prepared]
        if len(set(score_ids)) != len(score_ids):
            raise DuplicateScoreId("the same score_id appears twice in one batch")
        mine = _Append(prepared)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._write_lock:
            while not mine.done:  # done already if the group commit of the thread before had it
                self._commit_group(self._next_group())
        if mine.error is not None:
            raise mine.error
        return mine.rows

    def _next_group(self) -> list[_Append]:
        """The waiting appends up to ``GROUP_MAX_RECORDS`` records (at least one), oldest first."""
        with self._waiting_lock:
            size, taken = 0, 0
            for waiting in self._waiting:
                size += len(waiting.prepared)
                if taken and size > GROUP_MAX_RECORDS:
                    break
                taken += 1
            group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group

    def _commit_group(self, group: list[_Append]) -> None:
        """Write the group's appends in one transaction and hand each its rows or its error.

        If that transaction fails (nothing is written), an error of the database as a whole
        (locked, unreachable, read-only, a table missing) fails every append of the group, since
        each would meet it alone too; any other (a score_id already recorded, a record a trigger
        or constraint refuses) may come from one append's records, so each append is then
        written in a transaction of its own and only the ones at fault fail."""
        if len(group) > 1:
            try:
                rows = self._write([fields_ for one in group for fields_ in one.prepared])
            except BaseException as exc:
                if self._whole_database(exc):
                    for one in group:
                        one.fail(exc)
                    return
            else:
                start = 0
                for one in group:
                    one.rows = rows[start : start + len(one.prepared)]
                    start += len(one.prepared)
                    one.done = True
                return
        for one in group:
            try:
                one.rows = self._write(one.prepared)
                one.done = True
            except BaseException as exc:
                one.fail(exc)

    def _whole_database(self, error: BaseException) -> bool:
        """Whether an append's error is the database's as a whole (the driver's OperationalError
        or InterfaceError) or the process's (not an Exception: an interrupt, an exit)."""
        if not isinstance(error, Exception):
            return True
        if not isinstance(error, AuditUnavailable):
            return False
        cause = error.__cause__
        cause = getattr(cause, "orig", cause)  # SQLAlchemy wraps the driver's errors
        dbapi = self.engine.dialect.loaded_dbapi
        return isinstance(cause, (dbapi.OperationalError, dbapi.InterfaceError))

    def _write(self, prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One transaction: the prepared records chained onto the head and inserted."""
        try:
            with write_transaction(self.engine) as connection:
                return self._append_locked(connection, prepared)
        except self._integrity_errors as exc:
            if "score_id" in str(getattr(exc, "orig", exc)):
                raise DuplicateScoreId("a score_id of this batch is already recorded") from exc
            raise _unavailable("appending", exc) from exc
        except self._db_errors as exc:
            raise _unavailable("appending", exc) from exc

    def _append_locked(
        self, connection: Connection, prepared: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Chain the entries onto the head (locked for the rest of the transaction) and insert;
        the rows written."""
        head = connection.execute(
            sa.select(audit_chain_head.c.last_seq, audit_chain_head.c.last_hash)
            .where(audit_chain_head.c.id == 1)
            .with_for_update()
        ).one()
        seq, prev_hash = int(head.last_seq), str(head.last_hash)
        created_at = self._now()
        rows = []
        stamp = _iso_utc(created_at)
        for fields_ in prepared:
            seq += 1
            row = {**fields_, "seq": seq, "created_at": created_at, "prev_hash": prev_hash}
            payload_text = row.pop("payload_text")
            row["payload"] = None  # hashed as its canonical text, below
            row["record_hash"] = prev_hash = _chained_hash(row, stamp, payload_text)
            row["payload"] = payload_text.decode("utf-8")
            rows.append(row)
        self._insert.execute(connection, rows)
        connection.execute(
            sa.update(audit_chain_head)
            .where(audit_chain_head.c.id == 1)
            .values(last_seq=seq, last_hash=prev_hash)
        )
        return rows

    def get(self, score_id: str) -> AuditRecord | None:
        """The record with this score_id, or None."""
        try:
            with self.engine.connect() as connection:
                row = connection.execute(
                    sa.select(audit_records).where(audit_records.c.score_id == score_id)
                ).first()
        except self._db_errors as exc:
            raise _unavailable("reading", exc) from exc
        return None if row is None else _record(row)

    def verify(self) -> VerifyReport:
        """Walk the whole chain in one consistent snapshot and report the first break found."""
        try:
            with snapshot_transaction(self.engine) as connection:
                head = connection.execute(sa.select(audit_chain_head)).one()
                anchor = connection.execute(
                    sa.select(audit_purge_anchors)
                    .order_by(audit_purge_anchors.c.purged_through_seq.desc())
                    .limit(1)
                ).first()
                checker = _ChainChecker(anchor)
                for record in self._iter_records(connection, sa.true()):
                    report = checker.check(record)
                    if report is not None:
                        return report
                return checker.finish(int(head.last_seq), str(head.last_hash))
        except self._db_errors as exc:
            raise _unavailable("verifying", exc) from exc

    def _iter_records(self, connection: Connection, where: Any) -> Iterator[AuditRecord]:
        query = sa.select(audit_records).where(where).order_by(audit_records.c.seq)
        result = connection.execution_options(yield_per=EXPORT_CHUNK_ROWS).execute(query)
        for row in result:
            yield _record(row)

    def export(self, start: date, end: date, fmt: Literal["csv", "parquet"], out: Path) -> int:
        """Write the records created from ``start`` to ``end`` (inclusive, UTC days) to a file,
        atomically (temporary file + rename); returns the number of rows written."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"export format must be csv or parquet, got {fmt!r}")
        if start > end:
            raise ValueError(f"export range is empty: {start} is after {end}")
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        low = datetime.combine(start, time(), UTC)
        high = datetime.combine(end + timedelta(days=1), time(), UTC)
        where = sa.and_(audit_records.c.created_at >= low, audit_records.c.created_at < high)
        handle, temp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        os.close(handle)
        temp = Path(temp_name)
        try:
            with snapshot_transaction(self.engine) as connection:
                records = self._iter_records(connection, where)
                writer = _write_csv if fmt == "csv" else _write_parquet
                n_rows = writer(records, temp)
            with open(temp, "rb+") as written:
                os.fsync(written.fileno())
            os.replace(temp, out)
        except self._db_errors as exc:
            raise _unavailable("exporting", exc) from exc
        finally:
            temp.unlink(missing_ok=True)
        return n_rows

    def purge_expired(self, retention_days: int, today: date) -> int:
        """Delete the records created before ``today - retention_days`` (a prefix of the chain),
        leaving a purge anchor and a chained purge record; returns the number deleted.

        Refuses (AuditChainBroken) when the chain does not verify: a purge must not erase the
        evidence of tampering."""
        if retention_days < 0:
            raise ValueError("retention_days must be >= 0")
        report = self.verify()
        if not report.ok:
            raise AuditChainBroken(f"audit chain does not verify, nothing purged: {report.message}")
        cutoff_date = today - timedelta(days=retention_days)
        cutoff = datetime.combine(cutoff_date, time(), UTC)
        try:
            with write_transaction(self.engine) as connection:
                return self._purge_locked(connection, cutoff_date, cutoff, retention_days)
        except self._db_errors as exc:
            raise _unavailable("purging", exc) from exc

    def _purge_locked(
        self, connection: Connection, cutoff_date: date, cutoff: datetime, retention_days: int
    ) -> int:
        seq = audit_records.c.seq
        connection.execute(  # lock the chain head first, like an append
            sa.select(audit_chain_head.c.last_seq)
            .where(audit_chain_head.c.id == 1)
            .with_for_update()
        ).one()
        first_kept = connection.execute(
            sa.select(sa.func.min(seq)).where(audit_records.c.created_at >= cutoff)
        ).scalar()
        purgeable = sa.true() if first_kept is None else seq < first_kept
        last = connection.execute(
            sa.select(seq, audit_records.c.record_hash)
            .where(purgeable)
            .order_by(seq.desc())
            .limit(1)
        ).first()
        if last is None:
            return 0
        purge_entry = AuditEntry(
            kind=PURGE_KIND,
            requester_key_id=None,
            requester_role=None,
            model_name=None,
            model_version=None,
            model_sha256=None,
            policy_version=None,
            claim_id=None,
            payload={
                "purged_through_seq": int(last.seq),
                "last_purged_hash": str(last.record_hash),
                "cutoff_date": cutoff_date.isoformat(),
                "retention_days": retention_days,
            },
        )
        (row,) = self._append_locked(connection, [_prepared(purge_entry, 0, new_score_ids(1)[0])])
        purge_record = _appended(row)
        self._allow_purge(connection, True)
        n_purged = connection.execute(sa.delete(audit_records).where(seq <= last.seq)).rowcount
        self._allow_purge(connection, False)
        connection.execute(
            sa.insert(audit_purge_anchors).values(
                purged_at=purge_record.created_at,
                cutoff_date=cutoff_date,
                purged_through_seq=int(last.seq),
                last_purged_hash=str(last.record_hash),
                n_purged=n_purged,
                purge_record_seq=purge_record.seq,
            )
        )
        logger.info("purged %d audit records through seq %d", n_purged, last.seq)
        return int(n_purged)

    def _allow_purge(self, connection: Connection, allowed: bool) -> None:
        """Open or close the triggers' purge window for this transaction only."""
        if is_sqlite(connection):
            connection.execute(sa.update(audit_guard).values(purge_allowed=int(allowed)))
        else:
            connection.execute(
                sa.text("SELECT set_config('arscore.audit_purge', :value, true)"),
                {"value": "on" if allowed else "off"},
            )


class _ChainChecker:
    """Checks records one by one in seq order against the chain they should form."""

    def __init__(self, anchor: Any):
        self.anchor = anchor
        self.expected_seq = 1 if anchor is None else int(anchor.purged_through_seq) + 1
        self.expected_prev = GENESIS_HASH if anchor is None else str(anchor.last_purged_hash)
        self.start = (
            "the genesis" if anchor is None else f"the purge anchor (seq {self.expected_seq - 1})"
        )
        self.hash_before_prev: str | None = None
        self.previous: AuditRecord | None = None
        self.anchor_confirmed = anchor is None
        self.n_records = 0

    def _bad(self, seq: int, problem: Problem, message: str) -> VerifyReport:
        return VerifyReport(False, self.n_records, seq, problem, message)

    def check(self, record: AuditRecord) -> VerifyReport | None:
        """The report of the first problem this record reveals, or None."""
        self.n_records += 1
        name = f"record seq {record.seq} (score_id {record.score_id})"
        if record.seq > self.expected_seq:
            missing = f"seq {self.expected_seq}" + (
                f"..{record.seq - 1}" if record.seq - 1 > self.expected_seq else ""
            )
            after = "" if self.previous else f" after {self.start}"
            return self._bad(
                self.expected_seq, "removed", f"{missing} missing before {name}{after}"
            )
        if record.seq < self.expected_seq:
            return self._bad(record.seq, "inserted", f"{name} repeats a seq already in the chain")
        consistent = record_hash(record.__dict__) == record.record_hash
        if record.prev_hash != self.expected_prev:
            return self._broken_link(record, name, consistent)
        if not consistent:
            return self._bad(record.seq, "altered", f"{name} was altered: its hash does not match")
        if record.kind == PURGE_KIND and self.anchor is not None:
            self.anchor_confirmed |= (
                record.payload.get("purged_through_seq") == self.anchor.purged_through_seq
                and record.payload.get("last_purged_hash") == self.anchor.last_purged_hash
            )
        self.hash_before_prev, self.expected_prev = self.expected_prev, record.record_hash
        self.previous, self.expected_seq = record, record.seq + 1
        return None

    def _broken_link(self, record: AuditRecord, name: str, consistent: bool) -> VerifyReport:
        previous = self.previous
        if previous is None:
            if consistent:
                return self._bad(
                    record.seq,
                    "removed",
                    f"{name} does not chain to {self.start}: records "
                    "before it were removed or it was put there",
                )
            return self._bad(
                record.seq, "altered", f"{name} was altered: it does not chain to {self.start}"
            )
        prev_name = f"record seq {previous.seq} (score_id {previous.score_id})"
        if record.prev_hash == self.hash_before_prev:
            return self._bad(
                previous.seq,
                "inserted",
                f"{prev_name} was inserted: {name} chains to the record before it",
            )
        if consistent:
            return self._bad(
                previous.seq,
                "altered",
                f"{prev_name} was altered: {name} chained to a different hash",
            )
        return self._bad(
            record.seq, "altered", f"{name} was altered: its link and hash do not match"
        )

    def finish(self, head_seq: int, head_hash: str) -> VerifyReport:
        """Compare the end of the walk with the chain head and the purge anchor."""
        last_seq = self.expected_seq - 1
        if not self.anchor_confirmed:
            return self._bad(
                int(self.anchor.purged_through_seq),
                "removed",
                f"{self.start} has no matching purge record in the chain: records were removed "
                "outside a purge",
            )
        if last_seq < head_seq:
            missing = f"seq {last_seq + 1}" + (f"..{head_seq}" if head_seq > last_seq + 1 else "")
            return self._bad(
                last_seq + 1,
                "removed",
                f"{missing} missing at the end (the chain head is at seq {head_seq})",
            )
        if last_seq > head_seq:
            return self._bad(
                head_seq + 1,
                "inserted",
                f"record seq {head_seq + 1} and later were put after the chain head",
            )
        if self.expected_prev != head_hash:
            assert self.previous is not None
            return self._bad(
                last_seq,
                "altered",
                f"record seq {last_seq} (score_id {self.previous.score_id}) was altered: its hash "
                "does not match the chain head",
            )
        return VerifyReport(True, self.n_records, last_seq=last_seq, last_hash=head_hash)


def _export_rows(records: Iterator[AuditRecord]) -> Iterator[dict[str, Any]]:
    for record in records:
        row = dict(record.__dict__)
        row["created_at"] = _iso_utc(record.created_at)
        row["payload"] = canonical_json(record.payload).decode("utf-8")
        yield row


def _write_csv(records: Iterator[AuditRecord], path: Path) -> int:
    n_rows = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for row in _export_rows(records):
            writer.writerow(row)
            n_rows += 1
    return n_rows


def _write_parquet(records: Iterator[AuditRecord], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    special = {"seq": pa.int64(), "created_at": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([pa.field(name, special.get(name, pa.string())) for name in EXPORT_COLUMNS])
    n_rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in _export_rows(records):
            row["created_at"] = datetime.fromisoformat(row["created_at"])
            batch.append(row)
            if len(batch) == EXPORT_CHUNK_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n_rows, batch = n_rows + len(batch), []
        if batch or n_rows == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n_rows += len(batch)
    return n_rows

"""The compliance record's store: appends to the hash chain, reads, exports and purges.

Record types and hashing are ``serving.audit.records``; the verifier ``serving.audit.verify``;
exports ``serving.audit.export``. Appends take the chain head under a lock (``BEGIN IMMEDIATE``
on SQLite, ``SELECT ... FOR UPDATE`` on the one-row head table on PostgreSQL), so threads and
worker processes extend one unbroken chain.

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

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from serving.audit.export import write_records
from serving.audit.records import (
    PURGE_KIND,
    AuditChainBroken,
    AuditEntry,
    AuditError,
    AuditRecord,
    AuditUnavailable,
    DuplicateScoreId,
    VerifyReport,
    _chained_hash,
    _iso_utc,
    _payload_text,
    _record,
    new_score_ids,
    utc_now,
)
from serving.audit.tables import (
    audit_chain_head,
    audit_guard,
    audit_purge_anchors,
    audit_records,
    iter_records,
)
from serving.audit.verify import walk_chain
from serving.store.bulk import DriverInsert
from serving.store.engine import is_sqlite, snapshot_transaction, write_transaction

logger = logging.getLogger(__name__)

GROUP_MAX_RECORDS = 10_000  # records per group commit (an append larger than this goes alone)


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
        "requester_user": entry.requester_user,
        "requester_system": entry.requester_system,
        "payload_text": payload_text,
    }


def _appended(row: dict[str, Any]) -> AuditRecord:
    """The record of a row just written (its payload parsed back from the stored text)."""
    return AuditRecord(**{**row, "payload": orjson.loads(row["payload"])})


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

    def append_in(self, connection: Connection, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Record entries inside the caller's write transaction (``write_transaction``), so that
        they commit, or not, together with the caller's own rows: an action's record and its
        index row, say. Not group-committed; the chain head stays locked until that commit."""
        fresh = new_score_ids(len(entries))
        prepared = [_prepared(entry, i, fresh[i]) for i, entry in enumerate(entries)]
        score_ids = [p["score_id"] for p in prepared]
        if len(set(score_ids)) != len(score_ids):
            raise DuplicateScoreId("the same score_id appears twice in one batch")
        if not prepared:
            return []
        return [_appended(row) for row in self._append_locked(connection, prepared)]

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
                return walk_chain(connection)
        except self._db_errors as exc:
            raise _unavailable("verifying", exc) from exc

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
                n_rows = write_records(iter_records(connection, where), fmt, temp)
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

"""The chain's verifier: walks the records in seq order and names the first that was altered,
removed or inserted.

What it catches: a record whose hash does not match its fields, a record that does not chain to
the one before it, a gap in seq, a record after the chain head, a purge anchor without its purge
record. A rewrite of the whole chain from some record onwards *including* the head row is only
detectable against a copy of the head hash kept elsewhere (``arscore audit verify`` prints it).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from serving.audit.records import (
    GENESIS_HASH,
    PURGE_KIND,
    AuditRecord,
    Problem,
    VerifyReport,
    record_hash,
)
from serving.audit.tables import audit_chain_head, audit_purge_anchors, iter_records


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


def walk_chain(connection: Connection) -> VerifyReport:
    """Check every record on ``connection`` (one consistent snapshot) against the chain head and
    the latest purge anchor; the report names the first break found."""
    head = connection.execute(sa.select(audit_chain_head)).one()
    anchor = connection.execute(
        sa.select(audit_purge_anchors)
        .order_by(audit_purge_anchors.c.purged_through_seq.desc())
        .limit(1)
    ).first()
    checker = _ChainChecker(anchor)
    for record in iter_records(connection, sa.true()):
        report = checker.check(record)
        if report is not None:
            return report
    return checker.finish(int(head.last_seq), str(head.last_hash))

"""The audit trail's tables (created by the migrations) and the one way records are read back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from serving.audit.records import AuditRecord, _record

EXPORT_CHUNK_ROWS = 5_000


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
    sa.Column("requester_user", sa.String(64)),
    sa.Column("requester_system", sa.String(64)),
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


def iter_records(connection: Connection, where: Any) -> Iterator[AuditRecord]:
    """The records matching ``where``, in seq order, fetched in chunks."""
    query = sa.select(audit_records).where(where).order_by(audit_records.c.seq)
    result = connection.execution_options(yield_per=EXPORT_CHUNK_ROWS).execute(query)
    for row in result:
        yield _record(row)

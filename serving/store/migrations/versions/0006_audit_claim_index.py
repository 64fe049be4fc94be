"""The audit trail's index on claim_id goes: nothing reads by it, and every append paid for it.

Every score appends a record, and each record's claim_id landed on a random page of this index
(claims arrive in no order), while its seq, score_id and created_at entries all go at the end of
theirs. ``bench/bench_audit_append.py --compare claim-index``: onto 300,000 stored records, an
append of 1,000 scores took 73 to 86 ms with the index and 45 to 47 ms without it (medians of
two runs) and wrote 587 WAL pages instead of 161, mostly under the trail's write lock, which
every worker waits on. The cost grows with the trail, which is kept six years. No query of
arscore filters the trail by claim (``GET /v1/audit/{score_id}`` finds a record by score_id,
export and purge go by created_at). An auditor who needs every record of one claim can filter
an export, or create the index on a copy of the database; downgrade recreates it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = "audit_records"
INDEX = "ix_audit_records_claim_id"  # the name 0001's ``index=True`` gave it


def upgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)


def downgrade() -> None:
    op.create_index(INDEX, TABLE, ["claim_id"])

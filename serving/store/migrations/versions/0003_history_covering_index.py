"""A covering index on history_transactions for the online path's patient lookups.

Scoring reads every stored transaction of the patients in a request (``serving.stored_history``).
Through the (claim_id, identity) index each row cost a second B-tree descent into the table; with
the columns it reads in the index, SQLite answers from the index alone (a 1,000-patient lookup
went from ~40 to ~20 ms of CPU). PostgreSQL keeps them as INCLUDE columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEX = "history_transactions_covering"
READ_COLUMNS = ("date", "type", "amount_cents", "party", "carc_group", "carc_code", "rarc_code")
INCLUDED = ("id", *READ_COLUMNS, "reason")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(INDEX, "history_transactions", ["claim_id"], postgresql_include=INCLUDED)
    else:
        op.create_index(INDEX, "history_transactions", ["claim_id", *INCLUDED])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="history_transactions")

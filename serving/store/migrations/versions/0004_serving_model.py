"""The model the service should serve, shared by every worker process.

``POST /v1/models/reload`` reaches one worker; it publishes the model it switched to here (a
generation number that only grows), and the other workers follow within
``model_sync_seconds`` (``serving.api.model_sync``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "serving_model",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("uri", sa.String()),
        sa.Column("version", sa.String()),
        sa.Column("sha256", sa.String(64)),
        sa.Column("changed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("id = 1", name="serving_model_one_row"),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("serving_model")

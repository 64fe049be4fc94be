"""People behind keys and approvals as a step: users, key owners, the user in every audit record,
pending write-off requests and the answers kept for client retries.

- ``users``: username (fixed for life), display name, role, active flag, created/disabled times.
- ``api_keys`` gains ``username`` (a key issued to a user, in the user's role) or
  ``system_name`` (an integration), never both; existing keys keep neither.
- ``audit_records`` gains ``requester_user`` and ``requester_system``. Records written before
  have both empty and their hashes leave them out (``serving.audit.records.ADDED_FIELDS``), so
  the chain verifies across this revision.
- ``account_actions`` gains the collector's user or system, the approver's user and the write-off
  request an approved write-off came from.
- ``write_off_requests``: write-offs waiting for an approver, and the decisions on them.
- ``idempotent_responses``: the answer to each ``Idempotency-Key``, replayed on a retry.

Downgrade refuses while audit records name a user or a system (dropping the columns would break
their hashes), and revokes the keys of disabled users, which the older code could not stop.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
ROLES = ("scorer", "collector", "auditor", "admin", "approver")
STATUSES = ("pending", "approved", "rejected")
AUDIT_COLUMNS = ("requester_user", "requester_system")
ACTION_COLUMNS = ("collector_user", "collector_system", "approver_user", "write_off_request_id")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("disabled_at", Timestamp),
        sa.CheckConstraint(_in("role", ROLES), name="users_known_role"),
    )
    with op.batch_alter_table("api_keys", recreate="auto") as batch:
        batch.add_column(sa.Column("username", sa.String(64)))
        batch.add_column(sa.Column("system_name", sa.String(64)))
        batch.create_foreign_key("api_keys_user", "users", ["username"], ["username"])
        batch.create_check_constraint(
            "api_keys_one_owner", "username IS NULL OR system_name IS NULL"
        )
    for name in AUDIT_COLUMNS:
        op.add_column("audit_records", sa.Column(name, sa.String(64)))
    for name in ACTION_COLUMNS:
        op.add_column("account_actions", sa.Column(name, sa.String(64)))
    _request_table()
    op.create_table(
        "idempotent_responses",
        sa.Column("scope", sa.String(80), primary_key=True),
        sa.Column("idempotency_key", sa.String(128), primary_key=True),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )


def _request_table() -> None:
    op.create_table(
        "write_off_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(32), nullable=False, unique=True),
        sa.Column("claim_id", sa.String(), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_on", sa.Date(), nullable=False),
        sa.Column("requested_at", Timestamp, nullable=False),
        sa.Column("requester_key_id", sa.String(64), nullable=False),
        sa.Column("requester_role", sa.String(16), nullable=False),
        sa.Column("requester_user", sa.String(64)),
        sa.Column("requester_system", sa.String(64)),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("carc_code", sa.String(16)),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("override_reason", sa.Text()),
        sa.Column("score_id", sa.String(64), nullable=False),
        sa.Column("recommended_action", sa.String(32), nullable=False),
        sa.Column("written_off_before_cents", sa.BigInteger(), nullable=False),
        sa.Column("still_open_cents", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", Timestamp),
        sa.Column("decided_by_key_id", sa.String(64)),
        sa.Column("decided_by_role", sa.String(16)),
        sa.Column("decided_by_user", sa.String(64)),
        sa.Column("decision_note", sa.Text()),
        sa.Column("action_id", sa.String(64)),
        sa.CheckConstraint(_in("status", STATUSES), name="write_off_requests_known_status"),
        sa.CheckConstraint("amount_cents > 0", name="write_off_requests_positive_amount"),
    )
    op.create_index("write_off_requests_by_status", "write_off_requests", ["status", "id"])


def downgrade() -> None:
    bind = op.get_bind()
    named = bind.execute(
        sa.text(
            "SELECT count(*) FROM audit_records "
            "WHERE requester_user IS NOT NULL OR requester_system IS NOT NULL"
        )
    ).scalar_one()
    if named:
        raise RuntimeError(
            f"{named} audit records name a user or a system: dropping those columns would break "
            "their hashes, so revision 0007 cannot be downgraded on this database"
        )
    op.execute(
        "UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE revoked_at IS NULL "
        "AND username IN (SELECT username FROM users WHERE NOT active)"
    )
    op.drop_table("idempotent_responses")
    op.drop_index("write_off_requests_by_status", table_name="write_off_requests")
    op.drop_table("write_off_requests")
    for table, names in (("account_actions", ACTION_COLUMNS), ("audit_records", AUDIT_COLUMNS)):
        for name in names:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    with op.batch_alter_table("api_keys", recreate="auto") as batch:
        batch.drop_constraint("api_keys_one_owner", type_="check")
        batch.drop_constraint("api_keys_user", type_="foreignkey")
        batch.drop_column("system_name")
        batch.drop_column("username")
    op.drop_table("users")

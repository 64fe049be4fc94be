"""Worklist: scored open balances, the worklist's freshness state, collectors' actions; and an
``approver`` role for API keys (the second user a large write-off needs).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
ROLES_BEFORE = ("scorer", "collector", "auditor", "admin")
ROLES_AFTER = (*ROLES_BEFORE, "approver")


def _role_check(roles: tuple[str, ...]) -> str:
    return "role IN (" + ", ".join(f"'{role}'" for role in roles) + ")"


def _set_roles(roles: tuple[str, ...]) -> None:
    """Replace the CHECK constraint of api_keys.role (SQLite: the table is rebuilt)."""
    with op.batch_alter_table("api_keys", recreate="auto") as batch:
        batch.drop_constraint("api_keys_known_role", type_="check")
        batch.create_check_constraint("api_keys_known_role", _role_check(roles))


def upgrade() -> None:
    op.create_table(
        "worklist_accounts",
        sa.Column("claim_id", sa.String(), primary_key=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("score_id", sa.String(64), nullable=False),
        sa.Column("scored_at", Timestamp, nullable=False),
        sa.Column("model_name", sa.String()),
        sa.Column("model_version", sa.String()),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("policy_version", sa.String()),
        sa.Column("payer_id", sa.String(), nullable=False),
        sa.Column("payer_type", sa.String(32), nullable=False),
        sa.Column("responsibility", sa.String(16), nullable=False),
        sa.Column("open_balance_cents", sa.BigInteger(), nullable=False),
        sa.Column("days_in_ar", sa.Integer()),
        sa.Column("aging_bucket", sa.String(16)),
        sa.Column("last_activity_date", sa.Date()),
        sa.Column("last_activity_type", sa.String(32)),
        sa.Column("probability_collected", sa.Float()),
        sa.Column("expected_recovery_cents", sa.BigInteger()),
        sa.Column("risk_band", sa.String(16)),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("expected_net_recovery_cents", sa.BigInteger()),
        sa.Column("touches", sa.Float(), nullable=False),
        sa.Column("priority_cents", sa.BigInteger(), nullable=False),
        sa.Column("on_hold", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
    )
    op.create_index("worklist_accounts_order", "worklist_accounts", ["priority_cents", "claim_id"])
    op.create_table(
        "worklist_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("history_fingerprint", sa.String(128), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("rescored_at", Timestamp, nullable=False),
        sa.Column("n_accounts", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="worklist_state_single_row"),
    )
    op.create_table(
        "account_actions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.String(64), nullable=False, unique=True),
        sa.Column("claim_id", sa.String(), nullable=False, index=True),
        sa.Column("acted_on", sa.Date(), nullable=False, index=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("category", sa.String(32)),
        sa.Column("carc_code", sa.String(16)),
        sa.Column("amount_cents", sa.BigInteger()),
        sa.Column("note", sa.Text()),
        sa.Column("override_reason", sa.Text()),
        sa.Column("recommended_action", sa.String(32)),
        sa.Column("score_id", sa.String(64), nullable=False),
        sa.Column("collector_key_id", sa.String(64)),
        sa.Column("approver_key_id", sa.String(64)),
        sa.Column("approver_role", sa.String(16)),
        sa.Column("payer_id", sa.String()),
        sa.Column("payer_type", sa.String(32)),
        sa.Column("model_version", sa.String()),
        sa.Column("policy_version", sa.String()),
        sa.Column("probability_collected", sa.Float()),
    )
    _set_roles(ROLES_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM api_keys WHERE role = 'approver'")
    _set_roles(ROLES_BEFORE)
    op.drop_table("account_actions")
    op.drop_table("worklist_state")
    op.drop_index("worklist_accounts_order", table_name="worklist_accounts")
    op.drop_table("worklist_accounts")

"""Initial schema: audit trail with its chain head and guards, API keys, the history store.

Revision ID: 0001
Revises:
Create Date: 2025-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
# SQLite makes an INTEGER PRIMARY KEY the rowid; PostgreSQL gets a BIGINT.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

SQLITE_GUARDS = (
    """CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit_records is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
    WHEN coalesce((SELECT purge_allowed FROM audit_guard WHERE id = 1), 0) <> 1
    BEGIN SELECT RAISE(ABORT, 'audit_records is append-only: DELETE refused outside a purge');
    END""",
    """CREATE TRIGGER audit_chain_head_forward_only BEFORE UPDATE ON audit_chain_head
    WHEN NEW.last_seq < OLD.last_seq
    BEGIN SELECT RAISE(ABORT, 'audit_chain_head only moves forward: UPDATE refused'); END""",
    """CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
    BEGIN SELECT RAISE(ABORT, 'audit_chain_head is permanent: DELETE refused'); END""",
    """CREATE TRIGGER audit_purge_anchors_no_update BEFORE UPDATE ON audit_purge_anchors
    BEGIN SELECT RAISE(ABORT, 'audit_purge_anchors is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_purge_anchors_no_delete BEFORE DELETE ON audit_purge_anchors
    BEGIN SELECT RAISE(ABORT, 'audit_purge_anchors is append-only: DELETE refused'); END""",
)
SQLITE_GUARD_NAMES = (
    "audit_records_no_update",
    "audit_records_no_delete",
    "audit_chain_head_forward_only",
    "audit_chain_head_no_delete",
    "audit_purge_anchors_no_update",
    "audit_purge_anchors_no_delete",
)

# PostgreSQL: a purge sets the transaction-local setting arscore.audit_purge = 'on'.
POSTGRES_GUARDS = (
    """CREATE FUNCTION arscore_audit_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND coalesce(current_setting('arscore.audit_purge', true), '') = 'on'
        THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_records is append-only: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$""",
    """CREATE FUNCTION arscore_append_only_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$""",
    """CREATE FUNCTION arscore_audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.last_seq >= OLD.last_seq THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_chain_head only moves forward: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$""",
    """CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION arscore_audit_records_guard()""",
    """CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION arscore_audit_records_guard()""",
    """CREATE TRIGGER audit_chain_head_forward_only BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION arscore_audit_head_guard()""",
    """CREATE TRIGGER audit_purge_anchors_append_only BEFORE UPDATE OR DELETE
    ON audit_purge_anchors FOR EACH ROW EXECUTE FUNCTION arscore_append_only_guard()""",
)


def _audit_tables() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", BigId, primary_key=True, autoincrement=False),
        sa.Column("score_id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", Timestamp, nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("requester_key_id", sa.String(64)),
        sa.Column("requester_role", sa.String(16)),
        sa.Column("model_name", sa.String()),
        sa.Column("model_version", sa.String()),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("policy_version", sa.String()),
        sa.Column("claim_id", sa.String(), index=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
    )
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="audit_chain_head_single_row"),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS_HASH}])
    op.create_table(
        "audit_purge_anchors",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("purged_at", Timestamp, nullable=False),
        sa.Column("cutoff_date", sa.Date(), nullable=False),
        sa.Column("purged_through_seq", sa.BigInteger(), nullable=False, unique=True),
        sa.Column("last_purged_hash", sa.String(64), nullable=False),
        sa.Column("n_purged", sa.BigInteger(), nullable=False),
        sa.Column("purge_record_seq", sa.BigInteger(), nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        guard = op.create_table(
            "audit_guard",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("purge_allowed", sa.Integer(), nullable=False),
            sa.CheckConstraint("id = 1", name="audit_guard_single_row"),
        )
        op.bulk_insert(guard, [{"id": 1, "purge_allowed": 0}])


def _key_tables() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("label", sa.String(), nullable=False, server_default=""),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp),
        sa.CheckConstraint(
            "role IN ('scorer', 'collector', 'auditor', 'admin')", name="api_keys_known_role"
        ),
    )


def _history_tables() -> None:
    op.create_table(
        "history_claims",
        sa.Column("claim_id", sa.String(), primary_key=True),
        sa.Column("patient_key", sa.String(64), nullable=False, index=True),
        sa.Column("payer_id", sa.String(), nullable=False),
        sa.Column("payer_type", sa.String(32), nullable=False),
        sa.Column("claim_type", sa.String(32), nullable=False),
        sa.Column("place_of_service", sa.String(), nullable=False),
        sa.Column("service_date", sa.Date(), nullable=False),
        sa.Column("billed_date", sa.Date(), nullable=False),
        sa.Column("total_charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("expected_amount_cents", sa.BigInteger()),
        sa.Column("patient_age", sa.Integer()),
        sa.Column("patient_state", sa.String()),
        sa.Column("patient_zip3", sa.String()),
    )
    op.create_table(
        "history_transactions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "claim_id", sa.String(), sa.ForeignKey("history_claims.claim_id"), nullable=False
        ),
        sa.Column("identity", sa.String(64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("amount_cents", sa.BigInteger()),
        sa.Column("party", sa.String(16)),
        sa.Column("carc_group", sa.String(4)),
        sa.Column("carc_code", sa.String()),
        sa.Column("rarc_code", sa.String()),
        sa.Column("reason", sa.String(32)),
        sa.UniqueConstraint("claim_id", "identity", name="history_transactions_identity"),
    )


def upgrade() -> None:
    _audit_tables()
    _key_tables()
    _history_tables()
    guards = SQLITE_GUARDS if op.get_bind().dialect.name == "sqlite" else POSTGRES_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_GUARD_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.drop_table("audit_guard")
    op.drop_table("history_transactions")
    op.drop_table("history_claims")
    op.drop_table("api_keys")
    op.drop_table("audit_purge_anchors")
    op.drop_table("audit_chain_head")
    op.drop_table("audit_records")
    if op.get_bind().dialect.name == "postgresql":
        for function in (
            "arscore_audit_records_guard",
            "arscore_append_only_guard",
            "arscore_audit_head_guard",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")

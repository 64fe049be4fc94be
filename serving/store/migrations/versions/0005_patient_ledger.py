"""The patient ledger, filled from the stored history; the covering index of 0003 goes.

Scoring read every stored transaction of the patients in a request (~14 rows per claim) for five
patient-level values. The ledger (``serving.history.ledger``) keeps one row per stored claim and
one per transaction that adds to those values, so a request costs one aggregate query. Its index
on (patient_key, date) carries the other columns: SQLite answers from the index alone,
PostgreSQL keeps them as INCLUDE columns. The index on claim_id serves the refreshes of
``HistoryStore.upsert``.

The backfill is the SQL of ``serving.history.ledger.refresh_ledger`` for every claim, copied
here so that this revision keeps doing what it did when that module changes;
``tests/serving/history/test_ledger.py`` checks the two agree. Nothing reads
``history_transactions_covering`` any more (0003 made it for the per-transaction reads), and it
cost every stored transaction a second index entry, so it is dropped; downgrade recreates it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "history_patient_ledger"
PATIENT_INDEX = "history_patient_ledger_patient"
CLAIM_INDEX = "history_patient_ledger_claim"
CARRIED = ("claim_id", "billed", "patient_paid_cents", "to_patient_cents", "bad_debts")
# 0003's index, recreated by downgrade.
COVERING_INDEX = "history_transactions_covering"
COVERING_INCLUDED = (
    "id",
    "date",
    "type",
    "amount_cents",
    "party",
    "carc_group",
    "carc_code",
    "rarc_code",
    "reason",
)
BACKFILL = """
INSERT INTO history_patient_ledger
    (patient_key, claim_id, date, billed, patient_paid_cents, to_patient_cents, bad_debts)
SELECT patient_key, claim_id, billed_date, 1, 0,
    CASE WHEN payer_type = 'self_pay' THEN total_charge_cents ELSE 0 END, 0
FROM history_claims
UNION ALL
SELECT c.patient_key, t.claim_id, t.date, 0,
    CASE WHEN t.type = 'payment' THEN t.amount_cents ELSE 0 END,
    CASE WHEN t.type <> 'transfer' THEN 0
        WHEN t.party = 'payer' THEN -t.amount_cents ELSE t.amount_cents END,
    CASE WHEN t.type = 'adjustment' THEN 1 ELSE 0 END
FROM history_transactions t JOIN history_claims c ON c.claim_id = t.claim_id
WHERE (t.type = 'payment' AND t.party = 'patient' AND t.amount_cents <> 0)
    OR (t.type = 'transfer' AND t.amount_cents <> 0)
    OR (t.type = 'adjustment' AND t.reason = 'bad_debt')
"""


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("patient_key", sa.String(64), nullable=False),
        sa.Column("claim_id", sa.String(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("billed", sa.Integer(), nullable=False),
        sa.Column("patient_paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("to_patient_cents", sa.BigInteger(), nullable=False),
        sa.Column("bad_debts", sa.Integer(), nullable=False),
    )
    op.execute(BACKFILL)  # before the indexes: building them once is cheaper than row by row
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(PATIENT_INDEX, TABLE, ["patient_key", "date"], postgresql_include=CARRIED)
    else:
        op.create_index(PATIENT_INDEX, TABLE, ["patient_key", "date", *CARRIED])
    op.create_index(CLAIM_INDEX, TABLE, ["claim_id"])
    op.drop_index(COVERING_INDEX, table_name="history_transactions")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            COVERING_INDEX,
            "history_transactions",
            ["claim_id"],
            postgresql_include=COVERING_INCLUDED,
        )
    else:
        op.create_index(COVERING_INDEX, "history_transactions", ["claim_id", *COVERING_INCLUDED])
    op.drop_table(TABLE)

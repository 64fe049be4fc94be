"""An account as of now, read from the stored history inside a transaction, equals the batch
snapshot (``features.snapshots.build_snapshots``) of the same history; on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pandas as pd

from serving.history.store import HistoryStore
from serving.policy.facts import policy_columns
from serving.store.engine import write_transaction
from serving.worklist.current_facts import account_now
from tests.serving.fixtures_app import *  # noqa: F403
from tests.serving.fixtures_app import AS_OF
from tests.serving.worklist.factories import account_row

AS_OFS = (AS_OF - pd.Timedelta(days=75), AS_OF)


def _plain(value):
    """A value as Python has it: numpy scalars as numbers, every kind of missing as None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _same(left, right) -> bool:
    left, right = _plain(left), _plain(right)
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return float(left) == float(right)
    return left == right


def test_account_now_equals_the_batch_snapshot_of_the_stored_history(db_engine, raw_history):
    history = raw_history.validated()
    HistoryStore(db_engine).upsert(history.claims, history.transactions)
    for as_of in AS_OFS:
        expected = build_snapshots_by_claim(history, as_of)
        claim_ids = sorted(expected)[::25]  # some 20 open balances per date
        with_others = [c for c in claim_ids if expected[c]["patient_prior_claims"] > 0]
        assert len(with_others) >= 10  # the patient's other claims are read too
        with write_transaction(db_engine) as connection:
            found = {
                claim_id: account_now(connection, account_row(claim_id), as_of.date())
                for claim_id in claim_ids
            }
        for claim_id in claim_ids:
            now = found[claim_id]
            assert now is not None, claim_id
            for name in (*policy_columns(), "patient_prior_claims", "patient_prior_share_paid"):
                got, want = now.snapshot[name], expected[claim_id][name]
                assert _same(got, want), (claim_id, as_of, name, got, want)


def test_account_now_of_a_claim_without_open_balance_or_not_stored_is_none(db_engine, raw_history):
    history = raw_history.validated()
    HistoryStore(db_engine).upsert(history.claims, history.transactions)
    open_ids = set(build_snapshots_by_claim(history, AS_OF))
    closed = next(c for c in history.claims["claim_id"] if c not in open_ids)
    with write_transaction(db_engine) as connection:
        assert account_now(connection, account_row(str(closed)), AS_OF.date()) is None
        assert account_now(connection, account_row("NOT-STORED"), AS_OF.date()) is None


def build_snapshots_by_claim(history, as_of) -> dict[str, dict]:
    from features.snapshots import build_snapshots

    frame = build_snapshots(history, [as_of], labels=None, data_end=as_of)
    return {str(row["claim_id"]): row for row in frame.to_dict("records")}

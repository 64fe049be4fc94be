"""The server's history copy: idempotent upserts, exact amounts, frames snapshots accept."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from features.history import History
from features.snapshots import build_snapshots
from serving.history.store import HistoryStore, UpsertResult
from serving.history.tables import IN_CHUNK, HistoryStoreError, HistoryStoreUnavailable
from serving.store.engine import make_engine, upgrade
from tests.factories import claim_row, make_history, tx_row


def sample_history() -> History:
    """Two patients, three claims, a self-pay claim with missing optional fields."""
    return make_history(
        [
            claim_row("C1", patient_id="P-RAW-1"),
            claim_row(
                "C2", patient_id="P-RAW-1", service_date="2025-02-01", billed_date="2025-02-03"
            ),
            claim_row(
                "C3",
                patient_id="P-RAW-2",
                payer_id="SELF",
                payer_type="self_pay",
                total_charge="250.10",
                expected_amount=None,
                patient_age=None,
                patient_state=None,
            ),
        ],
        [
            tx_row("C1", "2025-02-10", "payment", "400.00", party="payer"),
            tx_row(
                "C1",
                "2025-02-10",
                "adjustment",
                "200.00",
                carc_group="CO",
                carc_code="45",
                reason="contractual",
            ),
            tx_row("C1", "2025-02-10", "transfer", "400.00", party="patient"),
            tx_row(
                "C2",
                "2025-03-01",
                "denial",
                None,
                carc_group="CO",
                carc_code="16",
                rarc_code="N290",
            ),
            tx_row("C3", "2025-01-20", "statement"),
            tx_row("C3", "2025-03-15", "payment", "25.05", party="patient"),
        ],
    )


def sorted_frames(history: History) -> tuple[pd.DataFrame, pd.DataFrame]:
    claims = history.claims.sort_values("claim_id", kind="stable", ignore_index=True)
    transactions = history.transactions.sort_values(
        ["claim_id", "date"], kind="stable", ignore_index=True
    )
    return claims, transactions


def table_count(engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_history_store_upsert_new_history_counts_everything_new(db_engine):
    history = sample_history()

    result = HistoryStore(db_engine).upsert(history.claims, history.transactions)

    assert result == UpsertResult(
        claims_new=3, claims_updated=0, transactions_new=6, transactions_duplicate=0
    )
    assert table_count(db_engine, "history_transactions") == 6


def test_history_store_resend_adds_nothing(db_engine):
    store = HistoryStore(db_engine)
    history = sample_history()
    store.upsert(history.claims, history.transactions)

    again = store.upsert(history.claims, history.transactions)

    assert again == UpsertResult(0, 0, 0, 6)
    assert table_count(db_engine, "history_claims") == 3
    assert table_count(db_engine, "history_transactions") == 6


def test_history_store_identical_payments_in_one_send_kept_as_two(db_engine):
    store = HistoryStore(db_engine)
    payment = tx_row("C1", "2025-02-10", "payment", "50.00", party="patient")
    twice = make_history([claim_row("C1")], [payment, payment])
    thrice = make_history([claim_row("C1")], [payment, payment, payment])

    first = store.upsert(twice.claims, twice.transactions)
    resent = store.upsert(twice.claims, twice.transactions)
    third = store.upsert(thrice.claims, thrice.transactions)

    assert (first.transactions_new, resent.transactions_new, third.transactions_new) == (2, 0, 1)
    loaded = store.load()
    assert loaded.transactions["amount"].tolist() == [50.0, 50.0, 50.0]


def test_history_store_later_send_updates_claim_fields(db_engine):
    store = HistoryStore(db_engine)
    history = sample_history()
    store.upsert(history.claims, history.transactions)
    changed = make_history(
        [claim_row("C1", patient_id="P-RAW-1", payer_type="medicaid", expected_amount="550.25")],
        [],
    )

    result = store.upsert(changed.claims, changed.transactions)

    assert (result.claims_new, result.claims_updated) == (0, 1)
    claims = store.load(claim_ids=["C1"]).claims
    assert (claims.loc[0, "payer_type"], claims.loc[0, "expected_amount"]) == ("medicaid", 550.25)
    assert len(store.load(claim_ids=["C1"]).transactions) == 3  # earlier transactions kept


def test_history_store_load_returns_validate_history_frames_exactly(db_engine):
    store = HistoryStore(db_engine)
    history = sample_history()
    store.upsert(history.claims, history.transactions)

    loaded = store.load()

    expected_claims, expected_transactions = sorted_frames(history)
    pd.testing.assert_frame_equal(loaded.claims, expected_claims)
    pd.testing.assert_frame_equal(loaded.transactions, expected_transactions)


def test_history_store_loaded_history_builds_the_same_snapshots(db_engine):
    store = HistoryStore(db_engine)
    history = sample_history()
    store.upsert(history.claims, history.transactions)
    as_of = [pd.Timestamp("2025-02-28"), pd.Timestamp("2025-03-31")]

    from_store = build_snapshots(store.load(), as_of, labels=None)

    expected = build_snapshots(History(*sorted_frames(history)), as_of, labels=None)
    assert len(from_store) > 0
    pd.testing.assert_frame_equal(from_store, expected)


def test_history_store_empty_load_has_the_right_dtypes(db_engine):
    loaded = HistoryStore(db_engine).load()
    reference = sample_history()

    assert loaded.claims.empty and loaded.transactions.empty
    assert loaded.claims.dtypes.to_dict() == reference.claims.dtypes.to_dict()
    assert loaded.transactions.dtypes.to_dict() == reference.transactions.dtypes.to_dict()


def test_history_store_load_by_claim_ids_or_patient_keys_is_a_union(db_engine):
    store = HistoryStore(db_engine)
    history = sample_history()
    store.upsert(history.claims, history.transactions)
    patient_2 = history.claims.set_index("claim_id").loc["C3", "patient_key"]

    by_claim = store.load(claim_ids=["C2"])
    by_both = store.load(claim_ids=["C2"], patient_keys=[patient_2])
    by_patient_1 = store.load(patient_keys=[history.claims.loc[0, "patient_key"]])

    assert by_claim.claims["claim_id"].tolist() == ["C2"]
    assert by_claim.transactions["claim_id"].tolist() == ["C2"]
    assert by_both.claims["claim_id"].tolist() == ["C2", "C3"]
    assert sorted(set(by_both.transactions["claim_id"])) == ["C2", "C3"]
    assert by_patient_1.claims["claim_id"].tolist() == ["C1", "C2"]
    assert store.load(claim_ids=[]).claims.empty


def test_history_store_load_more_claims_than_one_in_list_returns_all(db_engine):
    n_claims = IN_CHUNK * 2 + 7
    claims = [claim_row(f"C{i:05d}", patient_id=f"P{i % 50}") for i in range(n_claims)]
    transactions = [tx_row(f"C{i:05d}", "2025-02-01", "statement") for i in range(n_claims)]
    history = make_history(claims, transactions)
    store = HistoryStore(db_engine)
    store.upsert(history.claims, history.transactions)

    loaded = store.load(claim_ids=history.claims["claim_id"].tolist()[1:])

    assert len(loaded.claims) == len(loaded.transactions) == n_claims - 1
    assert store.open_claim_ids() == sorted(history.claims["claim_id"])


def test_history_store_never_stores_the_raw_patient_id(db_engine):
    store = HistoryStore(db_engine)
    history = sample_history()
    store.upsert(history.claims, history.transactions)

    with db_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM history_claims")).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert "P-RAW-1" not in stored and "P-RAW-2" not in stored
    assert history.claims.loc[0, "patient_key"] in stored


def test_history_store_raw_patient_id_column_refused(db_engine):
    history = sample_history()
    claims = history.claims.assign(patient_id="P-RAW-1")

    with pytest.raises(HistoryStoreError, match="patient_id"):
        HistoryStore(db_engine).upsert(claims, history.transactions)
    assert table_count(db_engine, "history_claims") == 0


def test_history_store_sub_cent_amount_refused_and_nothing_written(db_engine):
    history = make_history([claim_row("C1")], [tx_row("C1", "2025-02-01", "payment", "10.005")])

    with pytest.raises(HistoryStoreError, match="whole number of cents.*C1"):
        HistoryStore(db_engine).upsert(history.claims, history.transactions)
    assert table_count(db_engine, "history_claims") == 0


def test_history_store_transaction_of_unknown_claim_refused_and_nothing_written(db_engine):
    history = sample_history()
    orphan = pd.concat(
        [history.transactions, history.transactions.iloc[[0]].assign(claim_id="C-UNKNOWN")],
        ignore_index=True,
    )

    with pytest.raises(HistoryStoreError, match="C-UNKNOWN"):
        HistoryStore(db_engine).upsert(history.claims, orphan)
    assert table_count(db_engine, "history_claims") == 0


def test_history_store_failure_after_claims_written_rolls_everything_back(db_engine, monkeypatch):
    store = HistoryStore(db_engine)
    history = sample_history()

    def failing_insert(self, connection, rows, claim_rows):
        raise OperationalError("INSERT INTO history_transactions", {}, Exception("disk full"))

    monkeypatch.setattr(HistoryStore, "_insert_transactions", failing_insert)

    with pytest.raises(HistoryStoreUnavailable, match="nothing was written"):
        store.upsert(history.claims, history.transactions)
    assert table_count(db_engine, "history_claims") == 0


def test_history_store_driver_error_in_an_insert_is_unavailable_and_rolls_back(tmp_path):
    """The inserts go through the driver's own cursor, so its error (not SQLAlchemy's) reaches
    upsert: it still answers HistoryStoreUnavailable and writes nothing."""
    engine = make_engine(f"sqlite:///{tmp_path / 'history.db'}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON history_transactions "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    history = sample_history()

    with pytest.raises(HistoryStoreUnavailable, match="nothing was written"):
        HistoryStore(engine).upsert(history.claims, history.transactions)
    assert table_count(engine, "history_claims") == 0

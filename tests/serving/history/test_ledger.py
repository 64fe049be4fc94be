"""The patient ledger gives exactly ``other_claims`` over the stored records, and stays in step."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from features.history import History, validate_history
from features.money import cents_or_zero as cents
from features.schema import CARC_GROUPS, PAYER_TYPES, TRANSACTION_REASONS, TRANSACTION_TYPES
from serving.history import ledger as history_ledger
from serving.history import store as history_store
from serving.history.ledger import LEDGER_COLUMNS, other_claims_totals, refresh_ledger
from serving.history.store import HistoryStore
from serving.history.tables import IN_CHUNK, HistoryStoreError, HistoryStoreUnavailable
from serving.scoring.online_snapshot import other_claims, patient_deltas
from serving.scoring.records import OtherClaims, records_from_frames
from serving.store.engine import current_revision, downgrade, make_engine, upgrade
from tests.factories import TEST_KEY, claim_row, make_history, tx_row
from tests.serving.conftest import count_statements

START = dt.date(2025, 1, 1)
LEDGER_INDEXES = {"history_patient_ledger_patient", "history_patient_ledger_claim"}


def adversarial_history(n_patients: int, seed: int) -> History:
    """Patients with a few claims of every payer type whose events of every kind, party and
    reason crowd onto the same days, with missing and zero amounts; a few patient payments are
    then made negative (a reversal), which the store takes although validation refuses it."""
    rng = np.random.default_rng(seed)
    claims, transactions = [], []
    for patient in range(n_patients):
        for _ in range(rng.integers(1, 5)):
            claim_id = f"A{len(claims):05d}"
            billed = START + dt.timedelta(days=int(rng.integers(0, 90)))
            claims.append(
                claim_row(
                    claim_id,
                    patient_id=f"Q{patient}",
                    payer_type=str(rng.choice(PAYER_TYPES)),
                    service_date=billed.isoformat(),
                    billed_date=billed.isoformat(),
                    total_charge=str(rng.choice(["0.00", "0.01", "180.37", "12345678.91"])),
                )
            )
            day = billed + dt.timedelta(days=int(rng.integers(-3, 30)))
            for _ in range(rng.integers(0, 10)):
                day += dt.timedelta(days=int(rng.integers(0, 3)) * int(rng.integers(0, 20)))
                amount = rng.choice([None, "0.00", "0.01", "99.99", "7000000.11"])
                transactions.append(
                    tx_row(
                        claim_id,
                        day.isoformat(),
                        str(rng.choice(TRANSACTION_TYPES)),
                        amount,
                        party=rng.choice(["payer", "patient", None]),
                        carc_group=rng.choice([*CARC_GROUPS, None]),
                        reason=rng.choice([*TRANSACTION_REASONS, None]),
                    )
                )
    history = make_history(claims, transactions)
    tx = history.transactions
    paid = (tx["type"] == "payment") & (tx["party"] == "patient") & (tx["amount"] > 0)
    reversed_ = paid & (np.arange(len(tx)) % 3 == 0)
    tx = tx.assign(amount=tx["amount"].where(~reversed_, -tx["amount"]))
    return History(history.claims, tx)


def synthetic_history(n_claims: int, seed: int) -> History:
    """Realistic claims and events from the training data generator."""
    from training.synthetic import GeneratorConfig, generate_history

    claims, transactions = generate_history(GeneratorConfig(n_claims=n_claims, seed=seed, months=8))
    return validate_history(claims, transactions, TEST_KEY)


@pytest.fixture(scope="module")
def history() -> History:
    """~600 generated claims and ~130 adversarial ones, one history."""
    generated, adversarial = synthetic_history(600, seed=11), adversarial_history(50, seed=5)
    return History(
        pd.concat([generated.claims, adversarial.claims], ignore_index=True),
        pd.concat([generated.transactions, adversarial.transactions], ignore_index=True),
    )


def stored_by_patient(store: HistoryStore) -> tuple[dict[str, list], dict[str, list]]:
    """The stored claims and transactions as records, grouped by patient key."""
    loaded = store.load()
    claims, events = records_from_frames(loaded.claims, loaded.transactions)
    claims_of: dict[str, list] = {}
    events_of: dict[str, list] = {}
    patient_of = {}
    for claim in claims:
        claims_of.setdefault(claim.patient_key, []).append(claim)
        patient_of[claim.claim_id] = claim.patient_key
    for event in events:
        events_of.setdefault(patient_of[event.claim_id], []).append(event)
    return claims_of, events_of


def score_items(claims_of: dict[str, list], events_of: dict[str, list], seed: int) -> list:
    """(patient_key, claim_id, as_of) for every stored claim at dates before billing, on billing,
    on and around the patient's event dates and after the last; claims not stored of stored
    patients; unknown patients. Shuffled, so a patient's items land in several chunks."""
    rng = random.Random(seed)
    one_day = dt.timedelta(days=1)
    items = []
    for patient_key, claims in claims_of.items():
        event_days = sorted({e.date for e in events_of.get(patient_key, [])})
        last = max([*event_days, *(c.billed_date for c in claims)])
        for claim in claims:
            days = {claim.billed_date - one_day, claim.billed_date, last + one_day}
            for day in rng.sample(event_days, min(4, len(event_days))):
                days |= {day - one_day, day}
            items += [(patient_key, claim.claim_id, day) for day in sorted(days)]
        items += [(patient_key, "NOT-STORED", day) for day in (START, last)]
    items += [("pk_unknown", "C0000001", START), ("pk_unknown", "X", dt.date(2030, 1, 1))]
    rng.shuffle(items)
    return items


def ledger_rows(connection: sa.Connection) -> list[tuple]:
    """The ledger's rows without their ids, dates as ISO text, sorted."""
    rows = connection.exec_driver_sql(f"SELECT {LEDGER_COLUMNS} FROM history_patient_ledger")
    return sorted((key, claim, str(day), *rest) for key, claim, day, *rest in rows)


def stored_ledger(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as connection:
        return ledger_rows(connection)


def rebuilt_ledger(engine: sa.Engine) -> list[tuple]:
    """The ledger a full rebuild writes: emptied, then refreshed for every stored claim (and
    rolled back, so the stored ledger is left as it was)."""
    with engine.connect() as connection, connection.begin() as transaction:
        claim_ids = connection.exec_driver_sql("SELECT claim_id FROM history_claims").scalars()
        connection.exec_driver_sql("DELETE FROM history_patient_ledger")
        refresh_ledger(connection, list(claim_ids))
        rows = ledger_rows(connection)
        transaction.rollback()
    return rows


def reference_ledger(store: HistoryStore) -> list[tuple]:
    """The ledger rows computed in Python from the stored records with ``patient_deltas``."""
    loaded = store.load()
    claims, events = records_from_frames(loaded.claims, loaded.transactions)
    patient_of = {c.claim_id: c.patient_key for c in claims}
    rows = [
        (c.patient_key, c.claim_id, str(c.billed_date), 1, 0, 0, 0)
        if c.payer_type != "self_pay"
        else (c.patient_key, c.claim_id, str(c.billed_date), 1, 0, cents(c.total_charge), 0)
        for c in claims
    ]
    for event in events:
        deltas = patient_deltas(event.type, event.amount, event.party, event.reason)
        if any(deltas):
            rows.append((patient_of[event.claim_id], event.claim_id, str(event.date), 0, *deltas))
    return sorted(rows)


def assert_totals_equal_reference(engine: sa.Engine, store: HistoryStore, seed: int) -> int:
    """other_claims_totals equals other_claims over the stored records for many items; returns
    how many items had other claims to count."""
    claims_of, events_of = stored_by_patient(store)
    items = score_items(claims_of, events_of, seed)

    found = other_claims_totals(engine, items)

    expected = [
        other_claims(claim_id, claims_of.get(key, []), events_of.get(key, []), as_of)
        for key, claim_id, as_of in items
    ]
    assert found == expected
    return sum(1 for e in expected if e != OtherClaims())


def test_other_claims_totals_generated_history_equals_other_claims(db_engine, history):
    store = HistoryStore(db_engine)
    store.upsert(history.claims, history.transactions)

    counted = assert_totals_equal_reference(db_engine, store, seed=1)

    assert counted > 2 * IN_CHUNK  # several chunks of items that count something
    assert stored_ledger(db_engine) == reference_ledger(store)


def test_ledger_of_the_test_history_holds_every_kind_of_contribution(db_engine, history):
    store = HistoryStore(db_engine)
    store.upsert(history.claims, history.transactions)
    rows = stored_ledger(db_engine)
    # columns: patient_key, claim_id, date, billed, patient_paid, to_patient, bad_debts
    self_pay = set(history.claims.loc[history.claims["payer_type"] == "self_pay", "claim_id"])

    assert any(r[3] == 1 and r[5] > 0 and r[1] in self_pay for r in rows)
    assert any(r[4] < 0 for r in rows) and any(r[4] > 0 for r in rows)  # reversals, payments
    assert any(r[3] == 0 and r[5] < 0 for r in rows)  # transfers to the payer
    assert any(r[3] == 0 and r[5] > 0 for r in rows)  # transfers to the patient
    assert any(r[6] == 1 for r in rows)
    tx = history.transactions
    assert (tx["type"].isin(["payment", "transfer"]) & tx["amount"].isna()).any()


def test_other_claims_totals_values_are_int_and_date_in_item_order(db_engine):
    history = make_history(
        [
            claim_row("C1", patient_id="P1"),
            claim_row("C2", patient_id="P1", payer_type="self_pay", total_charge="30.10"),
            claim_row("C3", patient_id="P2"),
        ],
        [
            tx_row("C1", "2025-02-01", "payment", "12.34", party="patient"),
            tx_row("C1", "2025-02-03", "adjustment", None, reason="bad_debt"),
            tx_row("C3", "2025-02-02", "transfer", "5.00", party="payer"),
        ],
    )
    store = HistoryStore(db_engine)
    store.upsert(history.claims, history.transactions)
    p1, _, p2 = history.claims["patient_key"]
    day = dt.date(2025, 3, 1)

    found = other_claims_totals(db_engine, [(p2, "C9", day), (p1, "C2", day), (p1, "C1", day)])

    assert found == [
        OtherClaims(1, 0, -500, 0, None),
        OtherClaims(1, 1234, 0, 1, dt.date(2025, 2, 1)),
        OtherClaims(1, 0, 3010, 0, None),
    ]
    assert all(type(value) is int for totals in found for value in totals[:4])
    assert type(found[1].last_patient_payment) is dt.date
    assert other_claims_totals(db_engine, []) == []


def test_other_claims_totals_on_sqlite_reads_one_row_per_query(tmp_path, history):
    """SQLite answers a chunk of items in one row (a JSON array of the per-item rows): the
    driver lets go of the GIL at every row it steps to, and a busy thread of the worker then
    holds it for up to 5 ms. The totals are those of the rows (the tests above)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'history.db'}")
    upgrade(engine)
    store = HistoryStore(engine)
    store.upsert(history.claims, history.transactions)
    claims_of, events_of = stored_by_patient(store)
    items = score_items(claims_of, events_of, seed=3)[:IN_CHUNK]
    sql, params = history_ledger._totals_query(True, items, 0)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(sql, tuple(params)).all()

    found = other_claims_totals(engine, items)

    assert len(rows) == 1
    assert sum(1 for totals in found if totals != OtherClaims()) > 100
    assert found == other_claims_totals_row_by_row(engine, items)


def other_claims_totals_row_by_row(engine: sa.Engine, items) -> list[OtherClaims]:
    """The totals as one row per item, the way the query gives them before the JSON wrap."""
    found = [OtherClaims()] * len(items)
    sql, params = history_ledger._totals_query(True, items, 0)
    inner = sql.split("FROM (", 1)[1].rsplit(")", 1)[0]
    with engine.connect() as connection:
        for item, *totals, last in connection.exec_driver_sql(inner, tuple(params)):
            last = None if last is None else dt.date.fromisoformat(last)
            found[item] = OtherClaims(*totals, last)
    return found


def test_other_claims_totals_database_failure_raises_unavailable(db_engine):
    with db_engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE history_patient_ledger")

    with pytest.raises(HistoryStoreUnavailable, match="patient ledger"):
        other_claims_totals(db_engine, [("pk_1", "C1", START)])


def test_ledger_resend_refreshes_nothing(db_engine, history):
    store = HistoryStore(db_engine)
    store.upsert(history.claims, history.transactions)
    before = stored_ledger(db_engine)
    statements = count_statements(db_engine, "history_patient_ledger")

    store.upsert(history.claims, history.transactions)

    assert statements == []
    assert stored_ledger(db_engine) == before == rebuilt_ledger(db_engine)


def test_ledger_new_transactions_of_a_stored_claim_are_added(db_engine):
    store = HistoryStore(db_engine)
    first = make_history([claim_row("C1"), claim_row("C2")], [])
    store.upsert(first.claims, first.transactions)
    later = make_history(  # C2 sent again unchanged, with transactions
        [claim_row("C2")],
        [
            tx_row("C2", "2025-02-10", "payment", "40.00", party="patient"),
            tx_row("C2", "2025-02-11", "transfer", "15.00", party="patient"),
        ],
    )
    key = first.claims.loc[0, "patient_key"]

    result = store.upsert(later.claims, later.transactions)

    assert (result.claims_updated, result.transactions_new) == (0, 2)
    assert stored_ledger(db_engine) == rebuilt_ledger(db_engine) == reference_ledger(store)
    found = other_claims_totals(db_engine, [(key, "C1", dt.date(2025, 3, 1))])
    assert found == [OtherClaims(1, 4000, 1500, 0, dt.date(2025, 2, 10))]


def test_ledger_claim_update_of_payer_type_billed_date_and_charge_is_refreshed(db_engine):
    store = HistoryStore(db_engine)
    first = make_history(
        [claim_row("C1"), claim_row("C2")],
        [tx_row("C2", "2025-02-10", "payment", "40.00", party="patient")],
    )
    store.upsert(first.claims, first.transactions)
    key = first.claims.loc[0, "patient_key"]
    items = [(key, "C1", dt.date(2025, 1, 20)), (key, "C1", dt.date(2025, 3, 1))]
    assert other_claims_totals(db_engine, items)[0] == OtherClaims(1, 0, 0, 0, None)
    update = make_history(
        [
            claim_row(
                "C2",
                payer_type="self_pay",
                payer_id="SELF",
                billed_date="2025-02-01",
                total_charge="250.55",
            )
        ],
        [],
    )

    result = store.upsert(update.claims, update.transactions)

    assert result.claims_updated == 1
    assert stored_ledger(db_engine) == rebuilt_ledger(db_engine) == reference_ledger(store)
    assert other_claims_totals(db_engine, items) == [
        OtherClaims(),
        OtherClaims(1, 4000, 25055, 0, dt.date(2025, 2, 10)),
    ]


def test_ledger_claim_moved_to_another_patient_is_refreshed(db_engine):
    store = HistoryStore(db_engine)
    first = make_history(
        [claim_row("C1", patient_id="P1"), claim_row("C2", patient_id="P1")],
        [tx_row("C2", "2025-02-10", "adjustment", "9.00", reason="bad_debt")],
    )
    store.upsert(first.claims, first.transactions)
    moved = make_history([claim_row("C2", patient_id="P2")], [])

    store.upsert(moved.claims, moved.transactions)

    p1, p2 = first.claims.loc[0, "patient_key"], moved.claims.loc[0, "patient_key"]
    day = dt.date(2025, 3, 1)
    assert other_claims_totals(db_engine, [(p1, "C9", day), (p2, "C9", day)]) == [
        OtherClaims(1, 0, 0, 0, None),
        OtherClaims(1, 0, 0, 1, None),
    ]
    assert stored_ledger(db_engine) == rebuilt_ledger(db_engine)


def test_ledger_successive_bulk_loads_equal_a_full_rebuild(db_engine, history):
    """`arscore load` of an early extract, then of a later one that holds it and more."""
    store = HistoryStore(db_engine)
    cut = pd.Timestamp("2025-02-15")
    early_claims = history.claims[history.claims["billed_date"] <= cut]
    early = history.transactions[
        (history.transactions["date"] <= cut)
        & history.transactions["claim_id"].isin(early_claims["claim_id"])
    ]
    store.upsert(early_claims, early)
    assert stored_ledger(db_engine) == rebuilt_ledger(db_engine)

    result = store.upsert(history.claims, history.transactions)

    assert result.claims_new > 0 and result.transactions_new > 0
    assert stored_ledger(db_engine) == rebuilt_ledger(db_engine) == reference_ledger(store)
    assert_totals_equal_reference(db_engine, store, seed=2)


def test_ledger_unchanged_after_a_refused_upsert(db_engine):
    store = HistoryStore(db_engine)
    first = make_history([claim_row("C1"), claim_row("C2")], [])
    store.upsert(first.claims, first.transactions)
    before = stored_ledger(db_engine)
    refused = make_history(  # changes C1, pays on C2, and pays on a claim nobody sent
        [claim_row("C1", payer_type="self_pay", payer_id="SELF"), claim_row("C2")],
        [tx_row("C2", "2025-02-10", "payment", "40.00", party="patient")],
    )
    orphan = refused.transactions.assign(claim_id="C-UNKNOWN")
    transactions = pd.concat([refused.transactions, orphan], ignore_index=True)

    with pytest.raises(HistoryStoreError, match="C-UNKNOWN"):
        store.upsert(refused.claims, transactions)

    assert stored_ledger(db_engine) == before
    assert len(before) == 2


def test_ledger_failure_during_refresh_rolls_back_the_whole_send(db_engine, monkeypatch):
    store = HistoryStore(db_engine)
    first = make_history([claim_row("C1"), claim_row("C2")], [])
    store.upsert(first.claims, first.transactions)
    before = stored_ledger(db_engine)
    real_refresh = history_ledger.refresh_ledger

    def failing_refresh(connection, claim_ids):
        real_refresh(connection, claim_ids)
        raise OperationalError("INSERT INTO history_patient_ledger", {}, Exception("disk full"))

    monkeypatch.setattr(history_store, "refresh_ledger", failing_refresh)
    send = make_history(
        [claim_row("C2"), claim_row("C3")],
        [tx_row("C2", "2025-02-10", "payment", "40.00", party="patient")],
    )

    with pytest.raises(HistoryStoreUnavailable, match="nothing was written"):
        store.upsert(send.claims, send.transactions)

    assert stored_ledger(db_engine) == before
    assert store.load().claims["claim_id"].tolist() == ["C1", "C2"]


def test_migration_0005_backfills_stored_history_and_downgrades(db_url, history, monkeypatch):
    engine = make_engine(db_url)
    upgrade(engine, "0004")
    with monkeypatch.context() as patch:  # at 0004 there is no ledger to refresh
        patch.setattr(history_store, "refresh_ledger", lambda connection, claim_ids: None)
        HistoryStore(engine).upsert(history.claims, history.transactions)

    upgrade(engine, "0005")

    assert current_revision(engine) == "0005"
    backfilled = stored_ledger(engine)
    assert backfilled == rebuilt_ledger(engine) == reference_ledger(HistoryStore(engine))
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("history_transactions")}
    assert "history_transactions_covering" not in indexes
    ledger_indexes = {i["name"] for i in sa.inspect(engine).get_indexes("history_patient_ledger")}
    assert ledger_indexes == LEDGER_INDEXES

    downgrade(engine, "0004")

    assert "history_patient_ledger" not in sa.inspect(engine).get_table_names()
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("history_transactions")}
    assert "history_transactions_covering" in indexes
    upgrade(engine)
    assert stored_ledger(engine) == backfilled
    engine.dispose()

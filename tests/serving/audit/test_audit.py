"""The audit trail: hash chain, tamper evidence, concurrency, failures, export, purge, CLI."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sqlite3
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import typer
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from arscore.commands_audit import register
from serving.audit.records import (
    GENESIS_HASH,
    PURGE_KIND,
    AuditChainBroken,
    AuditEntry,
    AuditRecord,
    AuditUnavailable,
    DuplicateScoreId,
    new_score_ids,
    record_hash,
    sha256_hex,
)
from serving.audit.store import AuditStore
from serving.settings import get_settings
from serving.store.bulk import ROWS_PER_STATEMENT
from serving.store.engine import is_sqlite, make_engine, upgrade
from tests.factories import claim_row, make_history
from tests.serving.conftest import FakeClock, sqlite_runs, tampering


def score_entry(i: int, claim_id: str | None = None, **payload: object) -> AuditEntry:
    """A score entry like the scorer writes: pseudonymous features, probability, reasons."""
    return AuditEntry(
        kind="score",
        requester_key_id="k_scorer",
        requester_role="scorer",
        model_name="arscore",
        model_version="3",
        model_sha256="ab" * 32,
        policy_version="2025.1",
        claim_id=claim_id or f"C{i}",
        payload={
            "features": {"days_in_ar": 30.0 + i, "payer_type": "commercial", "patient_key": "pk_1"},
            "probability": 0.25,
            "expected_recovery": "125.50",
            "reasons": ["days_in_ar", "payer_type"],
            **payload,
        },
    )


def appended(store: AuditStore, n: int) -> list[AuditRecord]:
    return store.append([score_entry(i) for i in range(n)])


def count_records(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM audit_records")).scalar_one()


# --- the chain -------------------------------------------------------------------------------


def test_append_many_batches_chain_verifies(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    records = []
    for batch in range(10):
        clock.advance(seconds=1)
        records += store.append([score_entry(batch * 100 + i) for i in range(batch + 1)])
    records += [store.append([score_entry(9000 + i)])[0] for i in range(20)]

    report = store.verify()

    assert report.ok, report.message
    assert report.n_records == len(records) == 75
    assert [r.seq for r in records] == list(range(1, 76))
    assert records[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.record_hash for a, b in zip(records, records[1:], strict=False))
    assert report.last_hash == records[-1].record_hash


def test_append_record_hash_covers_every_field(db_engine, clock):
    (record,) = AuditStore(db_engine, clock=clock).append([score_entry(1)])
    fields = dict(record.__dict__)

    assert record_hash(fields) == record.record_hash
    changes = {
        "seq": 2,
        "created_at": record.created_at.replace(microsecond=1),
        "claim_id": "C2",
        "model_sha256": "cd" * 32,
        "prev_hash": "1" * 64,
        "payload": {**record.payload, "probability": 0.26},
    }
    for name, changed in changes.items():
        assert record_hash({**fields, name: changed}) != record.record_hash, name


def test_append_hash_of_unusual_values_equals_the_definition_and_the_stored_text(db_engine, clock):
    """Appends splice each record's canonical JSON from the payload text serialized once; the
    result must equal ``record_hash`` (what verify recomputes) for text, numbers and nulls of
    every kind, and the stored payload must read back as the record's payload."""
    odd = AuditEntry(
        kind="score",
        requester_key_id=None,
        requester_role=None,
        model_name='modèle "quoted" \\ back\u2028slash',
        model_version=None,
        model_sha256=None,
        policy_version="ünïcode",
        claim_id="C-\u00e9\U0001f600\t",
        payload={
            "floats": [1e-05, -0.0, 1e300, float("nan"), float("inf"), np.float32(0.1)],
            "ints": [0, -(2**62), True, np.int64(7)],
            "nested": {"b": [{"z": 1, "a": None}], "a": ("x", 2.5)},
            "money": Decimal("12.30"),
            "when": date(2026, 1, 2),
            3: "integer key",
        },
    )
    store = AuditStore(db_engine, clock=clock)
    records = store.append([odd, score_entry(1)])

    for record in records:
        assert record_hash(dict(record.__dict__)) == record.record_hash
        assert store.get(record.score_id) == record
    assert records[0].payload["floats"][3:5] == [None, None]  # NaN and infinities: null
    assert records[0].payload["3"] == "integer key"
    assert store.verify().ok


def test_append_get_returns_stored_record_and_none_for_unknown(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    records = appended(store, 3)

    assert store.get(records[1].score_id) == records[1]
    assert store.get(records[1].score_id).created_at == clock.now
    assert store.get("no-such-score") is None


def test_append_batch_of_1000_uses_one_driver_insert(db_engine, monkeypatch):
    """The rows go to the driver in one ``DriverInsert`` call (through its own cursor, so
    SQLAlchemy's statement events do not see it; the statements it runs are counted below)."""
    store = AuditStore(db_engine)
    batches: list[int] = []
    insert = store._insert.execute

    def counted(connection, rows):
        batches.append(len(rows))
        insert(connection, rows)

    monkeypatch.setattr(store._insert, "execute", counted)
    records = appended(store, 1000)

    assert len(records) == 1000 and count_records(db_engine) == 1000
    assert batches == [1000]
    assert store.verify().ok


@pytest.mark.parametrize("n", [1, 500, 1_001])
def test_append_on_sqlite_runs_one_multirow_insert_per_500_rows(tmp_path, n):
    """Each run of a statement lets another thread take the GIL while the trail's write lock is
    held, so SQLite gets the rows in statements of up to ROWS_PER_STATEMENT rows, not one
    run per row; the records, their order and the chain are those of the rows sent."""
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    store = AuditStore(engine)
    inserts = sqlite_runs(engine, "INSERT INTO audit_records")
    records = appended(store, n)

    assert len(inserts) == -(-n // ROWS_PER_STATEMENT)
    assert [r.claim_id for r in records] == [f"C{i}" for i in range(n)]
    assert [store.get(r.score_id) for r in records[:: max(1, n // 7)]] == records[:: max(1, n // 7)]
    assert count_records(engine) == n and store.verify().ok


def test_append_on_sqlite_keeps_within_the_builds_variable_limit(tmp_path):
    """A SQLite build that binds fewer variables per statement gets fewer rows per INSERT
    (16 columns, a limit of 35: two rows per statement)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    store = AuditStore(engine)
    inserts = sqlite_runs(engine, "INSERT INTO audit_records")

    @sa.event.listens_for(engine, "connect")
    def _small_limit(dbapi_connection, _record):
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 35)

    records = appended(store, 5)

    assert len(inserts) == 3
    assert count_records(engine) == 5 and store.verify().ok
    assert [store.get(r.score_id) for r in records] == records


@pytest.mark.parametrize("size", [0, 1, 2_046, 2_047, 2_048, 4_094, 4_095, 100_000])
def test_sha256_hex_equals_hashlib_at_every_size(size):
    """Fed in pieces under 2,048 bytes (so hashlib keeps the GIL), the digest is sha256's."""
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_append_stores_created_at_as_sqlalchemy_writes_it(db_engine):
    """The driver-level insert keeps SQLAlchemy's storage format (on SQLite, DATETIME text
    without an offset, not sqlite3's own adapter's), so stored times compare and sort alike."""
    clock = FakeClock(datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC))
    store = AuditStore(db_engine, clock=clock)
    store.append([score_entry(1)])
    with db_engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT created_at FROM audit_records").scalar_one()
    if db_engine.dialect.name == "sqlite":
        assert raw == "2025-03-01 12:00:00.123456"
    else:
        assert raw == clock.now


def test_append_payload_values_normalized_to_json(db_engine):
    store = AuditStore(db_engine)
    (record,) = store.append(
        [score_entry(1, missing=float("nan"), numpy=np.float64(0.5), day=date(2025, 1, 2))]
    )

    stored = store.get(record.score_id)
    assert stored.payload["missing"] is None
    assert stored.payload["numpy"] == 0.5
    assert stored.payload["day"] == "2025-01-02"
    assert store.verify().ok


def test_append_payload_with_patient_id_refused_and_nothing_written(db_engine):
    store = AuditStore(db_engine)
    bad = score_entry(2, features={"patient_id": "P-RAW-1"})

    with pytest.raises(ValueError, match="raw patient identifier"):
        store.append([score_entry(1), bad])
    assert count_records(db_engine) == 0


@pytest.mark.parametrize(
    "payload",
    [{"Patient_ID": "P-RAW-1"}, {"reasons": [{"deep": {"PATIENT_ID": "P-RAW-1"}}]}],
    ids=["mixed-case", "nested-in-list"],
)
def test_append_refuses_patient_id_key_in_any_case_at_any_depth(db_engine, payload):
    with pytest.raises(ValueError, match="raw patient identifier"):
        AuditStore(db_engine).append([score_entry(1, **payload)])
    assert count_records(db_engine) == 0


def test_append_accepts_patient_id_mentioned_inside_a_text_value(db_engine):
    note = 'the caller sent {"patient_id": ...}; it was pseudonymized'
    (record,) = AuditStore(db_engine).append([score_entry(1, note=note)])
    assert record.payload["note"] == note


def test_append_duplicate_score_id_refused(db_engine):
    store = AuditStore(db_engine)
    (record,) = appended(store, 1)
    again = AuditEntry(**{**score_entry(2).__dict__, "score_id": record.score_id})

    with pytest.raises(DuplicateScoreId):
        store.append([again])
    assert count_records(db_engine) == 1 and store.verify().ok


# --- tamper evidence -------------------------------------------------------------------------


def test_verify_edited_record_reports_altered(db_engine):
    store = AuditStore(db_engine)
    records = appended(store, 10)
    with tampering(db_engine) as connection:
        connection.execute(
            sa.text("UPDATE audit_records SET payload = :p WHERE seq = 5"),
            {"p": json.dumps({**records[4].payload, "probability": 0.99})},
        )

    report = store.verify()

    assert not report.ok
    assert (report.problem, report.first_bad_seq) == ("altered", 5)
    assert records[4].score_id in report.message


def test_verify_payload_replaced_by_invalid_json_reports_altered(db_engine):
    store = AuditStore(db_engine)
    records = appended(store, 4)
    with tampering(db_engine) as connection:
        connection.execute(sa.text("UPDATE audit_records SET payload = 'not json{' WHERE seq = 3"))

    report = store.verify()

    assert (report.ok, report.problem, report.first_bad_seq) == (False, "altered", 3)
    assert records[2].score_id in report.message


def test_verify_edited_record_with_recomputed_hash_reports_altered(db_engine):
    store = AuditStore(db_engine)
    records = appended(store, 10)
    forged = {**records[4].__dict__, "claim_id": "C-OTHER"}
    with tampering(db_engine) as connection:
        connection.execute(
            sa.text(
                "UPDATE audit_records SET claim_id = 'C-OTHER', record_hash = :h WHERE seq = 5"
            ),
            {"h": record_hash(forged)},
        )

    report = store.verify()

    assert (report.ok, report.problem, report.first_bad_seq) == (False, "altered", 5)
    assert records[4].score_id in report.message


@pytest.mark.parametrize("deleted_seq", [1, 5, 10])
def test_verify_deleted_record_reports_removed(db_engine, deleted_seq):
    store = AuditStore(db_engine)
    appended(store, 10)
    with tampering(db_engine) as connection:
        connection.execute(sa.text("DELETE FROM audit_records WHERE seq = :s"), {"s": deleted_seq})

    report = store.verify()

    assert (report.ok, report.problem, report.first_bad_seq) == (False, "removed", deleted_seq)
    assert f"seq {deleted_seq}" in report.message


def _forged_row(after: AuditRecord, seq: int) -> dict:
    fields = {**score_entry(666).__dict__, "score_id": "forged0001", "seq": seq}
    fields.update(created_at=after.created_at, prev_hash=after.record_hash)
    fields["record_hash"] = record_hash(fields)
    return {**fields, "payload": json.dumps(fields["payload"])}


def _insert_raw(connection, row: dict) -> None:
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    connection.execute(sa.text(f"INSERT INTO audit_records ({columns}) VALUES ({values})"), row)


def test_verify_inserted_record_in_the_middle_reports_inserted(db_engine):
    store = AuditStore(db_engine)
    records = appended(store, 10)
    with tampering(db_engine) as connection:  # make room after seq 5, put a forged record there
        connection.execute(sa.text("UPDATE audit_records SET seq = -seq WHERE seq > 5"))
        connection.execute(sa.text("UPDATE audit_records SET seq = 1 - seq WHERE seq < 0"))
        _insert_raw(connection, _forged_row(after=records[4], seq=6))

    report = store.verify()

    assert (report.ok, report.problem, report.first_bad_seq) == (False, "inserted", 6)
    assert "forged0001" in report.message


def test_verify_record_appended_behind_the_head_reports_inserted(db_engine):
    store = AuditStore(db_engine)
    records = appended(store, 10)
    with tampering(db_engine) as connection:
        _insert_raw(connection, _forged_row(after=records[-1], seq=11))

    report = store.verify()

    assert (report.ok, report.problem, report.first_bad_seq) == (False, "inserted", 11)


def test_guard_update_and_delete_through_sql_refused(db_engine):
    store = AuditStore(db_engine)
    records = appended(store, 3)
    statements = [
        "UPDATE audit_records SET claim_id = 'X' WHERE seq = 2",
        "DELETE FROM audit_records WHERE seq = 2",
        "DELETE FROM audit_records",
        "UPDATE audit_chain_head SET last_seq = 0",
    ]
    if not is_sqlite(db_engine):
        statements.append("TRUNCATE audit_records")
    for statement in statements:
        refused = pytest.raises(DBAPIError, match="append-only|only moves forward")
        with refused, db_engine.begin() as connection:
            connection.execute(sa.text(statement))

    assert store.get(records[1].score_id) == records[1]
    assert store.verify().ok and count_records(db_engine) == 3


def test_audit_store_public_api_has_no_update_or_delete():
    public = {name for name in dir(AuditStore) if not name.startswith("_")}

    assert public == {
        "append",
        "append_ids",
        "append_in",
        "get",
        "verify",
        "export",
        "purge_expired",
    }


# --- concurrency -----------------------------------------------------------------------------


def test_append_8_threads_x_200_chain_intact(db_engine):
    store = AuditStore(db_engine)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            start.wait()
            for i in range(200):
                store.append([score_entry(thread * 1000 + i)])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    report = store.verify()
    assert report.ok, report.message
    assert report.n_records == count_records(db_engine) == 1600 == report.last_seq


def _append_in_process(url: str, worker: int, go, n_batches: int) -> None:
    """Run in a child process: its own engine, appending small batches as fast as it can."""
    engine = make_engine(url)
    store = AuditStore(engine)
    go.wait(30)
    for batch in range(n_batches):
        store.append([score_entry(worker * 10_000 + batch * 10 + i) for i in range(3)])
    engine.dispose()


def test_append_two_processes_chain_intact(db_engine, db_url):
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    workers = [
        context.Process(target=_append_in_process, args=(db_url, worker, go, 150))
        for worker in range(2)
    ]
    for process in workers:
        process.start()
    go.set()
    for process in workers:
        process.join(120)

    assert [p.exitcode for p in workers] == [0, 0]
    report = AuditStore(db_engine).verify()
    assert report.ok, report.message
    assert report.n_records == count_records(db_engine) == 900
    with db_engine.connect() as connection:
        claims = connection.execute(sa.text("SELECT claim_id FROM audit_records ORDER BY seq"))
        workers_in_order = [int(c[1:]) // 10_000 for (c,) in claims]
    assert set(workers_in_order) == {0, 1}


# --- failures --------------------------------------------------------------------------------


FAILING_INSERT_SQLITE = """CREATE TRIGGER test_failing_disk BEFORE INSERT ON audit_records
WHEN NEW.claim_id = 'FAIL' BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"""
FAILING_INSERT_POSTGRES = (
    """CREATE FUNCTION test_failing_disk() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.claim_id = 'FAIL' THEN RAISE EXCEPTION 'simulated write failure'; END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER test_failing_disk BEFORE INSERT ON audit_records
    FOR EACH ROW EXECUTE FUNCTION test_failing_disk()""",
)


def install_failing_insert(engine) -> None:
    """A trigger that refuses to insert any record whose claim_id is 'FAIL' (as a full disk or a
    constraint would), on SQLite or PostgreSQL."""
    with engine.begin() as connection:
        for statement in [FAILING_INSERT_SQLITE] if is_sqlite(engine) else FAILING_INSERT_POSTGRES:
            connection.exec_driver_sql(statement)


def read_only_trail(tmp_path):
    """A SQLite trail holding one record, and two engines on it: writable, and read-only."""
    path = tmp_path / "audit.db"
    writable = make_engine(f"sqlite:///{path}")
    upgrade(writable)
    AuditStore(writable).append([score_entry(1)])
    return writable, make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")


def test_append_failure_mid_batch_raises_unavailable_and_writes_nothing(db_engine):
    store = AuditStore(db_engine)
    before = appended(store, 5)
    install_failing_insert(db_engine)
    batch = [score_entry(i) for i in range(1000)]
    batch[500] = score_entry(500, claim_id="FAIL")

    with pytest.raises(AuditUnavailable, match="simulated write failure"):
        store.append(batch)

    assert count_records(db_engine) == 5
    after = store.append([score_entry(6)])
    assert after[0].seq == 6 and after[0].prev_hash == before[-1].record_hash
    assert store.verify().ok


def test_append_dropped_table_raises_unavailable(db_engine):
    store = AuditStore(db_engine)
    appended(store, 2)
    with db_engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE audit_records"))

    with pytest.raises(AuditUnavailable, match="while appending"):
        store.append([score_entry(3)])
    with pytest.raises(AuditUnavailable):
        store.verify()


def test_append_read_only_sqlite_raises_unavailable(tmp_path):
    writable, read_only = read_only_trail(tmp_path)

    with pytest.raises(AuditUnavailable, match="readonly"):
        AuditStore(read_only).append([score_entry(2), score_entry(3)])

    assert count_records(writable) == 1
    assert AuditStore(read_only).verify().ok
    read_only.dispose()
    writable.dispose()


def test_append_unreachable_postgres_raises_unavailable():
    engine = make_engine(
        "postgresql://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2}
    )

    with pytest.raises(AuditUnavailable):
        AuditStore(engine).append([score_entry(1)])


# --- group commit ----------------------------------------------------------------------------


class CountingClock:
    """A clock for the store that moves a second at every call: the store reads it once per
    transaction, so ``calls`` counts the transactions written."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return datetime(2025, 3, 1, 12, 0, tzinfo=UTC) + timedelta(seconds=self.calls)


def append_waiting_together(store: AuditStore, batches: list[list[AuditEntry]]) -> list:
    """Each batch appended by a thread of its own while the store's write lock is held, so that
    all of them wait together; then the lock is let go. The score ids, or the error, of each."""
    outcomes: list = [None] * len(batches)

    def work(position: int) -> None:
        try:
            outcomes[position] = store.append_ids(batches[position])
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[position] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    with store._write_lock:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(store._waiting) < len(batches):
            assert time.monotonic() < deadline, "the appends did not all wait"
            time.sleep(0.001)
    for thread in threads:
        thread.join(60)
    return outcomes


def claims_of(store: AuditStore, score_ids: list[str]) -> list[str | None]:
    return [store.get(score_id).claim_id for score_id in score_ids]


def test_appends_waiting_together_are_written_in_one_transaction(db_engine):
    clock = CountingClock()
    store = AuditStore(db_engine, clock=clock)
    batches = [[score_entry(10 * b + i) for i in range(3)] for b in range(5)]

    outcomes = append_waiting_together(store, batches)

    assert clock.calls == 1
    for batch, score_ids in zip(batches, outcomes, strict=True):
        assert claims_of(store, score_ids) == [entry.claim_id for entry in batch]
        seqs = [store.get(score_id).seq for score_id in score_ids]
        assert seqs == list(range(seqs[0], seqs[0] + 3))  # each batch's records stay together
    report = store.verify()
    assert report.ok and report.n_records == count_records(db_engine) == 15


def test_a_group_takes_at_most_group_max_records_and_every_append_is_written(
    db_engine, monkeypatch
):
    monkeypatch.setattr("serving.audit.store.GROUP_MAX_RECORDS", 4)
    clock = CountingClock()
    store = AuditStore(db_engine, clock=clock)
    batches = [[score_entry(10 * b + i) for i in range(2)] for b in range(5)] + [
        [score_entry(100 + i) for i in range(7)]  # alone above the limit: still written
    ]

    outcomes = append_waiting_together(store, batches)

    assert clock.calls == 4  # (2 + 2), (2 + 2), (2), (7)
    for batch, score_ids in zip(batches, outcomes, strict=True):
        assert claims_of(store, score_ids) == [entry.claim_id for entry in batch]
    assert store.verify().ok and count_records(db_engine) == 17


def test_a_record_refused_in_a_group_fails_only_the_append_that_brought_it(db_engine):
    store = AuditStore(db_engine)
    install_failing_insert(db_engine)
    batches = [[score_entry(10 * b + i) for i in range(3)] for b in range(4)]
    batches[2][1] = score_entry(21, claim_id="FAIL")

    outcomes = append_waiting_together(store, batches)

    assert isinstance(outcomes[2], AuditUnavailable)
    assert "simulated write failure" in str(outcomes[2])
    for position in (0, 1, 3):
        assert claims_of(store, outcomes[position]) == [e.claim_id for e in batches[position]]
    assert store.verify().ok and count_records(db_engine) == 9


def test_a_score_id_already_recorded_in_a_group_fails_only_its_append(db_engine):
    store = AuditStore(db_engine)
    (recorded,) = store.append_ids([score_entry(1)])
    batches = [[score_entry(10 + b)] for b in range(3)]
    batches[1] = [replace(score_entry(11), score_id=recorded)]

    outcomes = append_waiting_together(store, batches)

    assert isinstance(outcomes[1], DuplicateScoreId)
    assert claims_of(store, outcomes[0]) == ["C10"] and claims_of(store, outcomes[2]) == ["C12"]
    assert store.verify().ok and count_records(db_engine) == 3


def test_a_group_the_database_refuses_fails_every_append_in_one_try(tmp_path):
    """A read-only file refuses every transaction alike: one try for the group, not one each."""
    writable, read_only = read_only_trail(tmp_path)
    clock = CountingClock()
    store = AuditStore(read_only, clock=clock)
    begins = sqlite_runs(read_only, "BEGIN")

    outcomes = append_waiting_together(store, [[score_entry(10 + b)] for b in range(4)])

    assert all(isinstance(outcome, AuditUnavailable) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == 4  # each caller raises its own
    assert len(begins) == 1
    assert count_records(writable) == 1
    read_only.dispose()
    writable.dispose()


# --- export ----------------------------------------------------------------------------------


def _dated_records(store: AuditStore, clock: FakeClock) -> dict[date, list[AuditRecord]]:
    """Three records on each of four days, with a real history's pseudonymous patient key."""
    history = make_history([claim_row("C1", patient_id="P-RAW-777")], [])
    patient_key = str(history.claims["patient_key"].iloc[0])
    by_day = {}
    for day in (date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3), date(2025, 3, 4)):
        clock.now = datetime(day.year, day.month, day.day, 23, 59, 59, 999_999, tzinfo=UTC)
        entries = [score_entry(i, features={"patient_key": patient_key}) for i in range(3)]
        by_day[day] = store.append(entries)
    return by_day


def _read(path: Path, fmt: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str) if fmt == "csv" else pd.read_parquet(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_date_range_round_trips_without_patient_id(db_engine, clock, tmp_path, fmt):
    store = AuditStore(db_engine, clock=clock)
    by_day = _dated_records(store, clock)
    out = tmp_path / "exports" / f"audit.{fmt}"

    n_rows = store.export(date(2025, 3, 2), date(2025, 3, 3), fmt, out)

    frame = _read(out, fmt)
    expected = by_day[date(2025, 3, 2)] + by_day[date(2025, 3, 3)]
    assert n_rows == len(frame) == 6
    assert frame["score_id"].tolist() == [r.score_id for r in expected]
    assert "patient_id" not in frame.columns
    assert "P-RAW-777" not in out.read_bytes().decode("utf-8", errors="replace")
    assert [json.loads(p) for p in frame["payload"]] == [r.payload for r in expected]
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_export_rows_let_an_auditor_recompute_every_hash(db_engine, clock, tmp_path):
    store = AuditStore(db_engine, clock=clock)
    _dated_records(store, clock)
    out = tmp_path / "audit.csv"
    store.export(date(2025, 3, 1), date(2025, 3, 4), "csv", out)

    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    for row in frame.to_dict("records"):
        fields = {k: (v or None) for k, v in row.items()}
        fields.update(seq=int(row["seq"]), payload=json.loads(row["payload"]))
        fields["created_at"] = datetime.fromisoformat(row["created_at"])
        assert record_hash(fields) == row["record_hash"]
    assert len(frame) == 12


def test_export_failure_keeps_previous_file(db_engine, tmp_path):
    out = tmp_path / "exports" / "audit.csv"
    out.parent.mkdir()
    out.write_text("previous export\n")
    with db_engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE audit_records"))

    with pytest.raises(AuditUnavailable):
        AuditStore(db_engine).export(date(2025, 1, 1), date(2025, 12, 31), "csv", out)

    assert out.read_text() == "previous export\n"
    assert list(out.parent.iterdir()) == [out]


# --- purge -----------------------------------------------------------------------------------


def test_purge_expired_keeps_records_inside_retention_and_chain_verifies(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    by_day = _dated_records(store, clock)

    n_purged = store.purge_expired(retention_days=2, today=date(2025, 3, 5))

    assert n_purged == 6  # March 1 and 2; the cutoff day March 3 is kept
    assert store.get(by_day[date(2025, 3, 2)][-1].score_id) is None
    assert store.get(by_day[date(2025, 3, 3)][0].score_id) is not None
    report = store.verify()
    assert report.ok, report.message
    assert report.n_records == 6 + 1  # the kept records and the purge record
    purge = store.get(store.append([score_entry(99)])[0].score_id)
    assert store.verify().ok and purge.seq == 14


def test_purge_twice_chain_still_verifies(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    _dated_records(store, clock)
    clock.now = datetime(2025, 3, 10, tzinfo=UTC)
    assert store.purge_expired(retention_days=7, today=date(2025, 3, 10)) == 6
    clock.now = datetime(2025, 3, 12, tzinfo=UTC)
    assert store.purge_expired(retention_days=0, today=date(2025, 3, 12)) == 7  # + 1st purge's

    report = store.verify()
    assert report.ok, report.message
    assert report.n_records == 1


def test_purge_nothing_expired_returns_zero_and_records_nothing(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    appended(store, 3)

    assert store.purge_expired(retention_days=6 * 365, today=date(2025, 3, 1)) == 0
    assert count_records(db_engine) == 3


def test_verify_after_purge_detects_next_record_deleted(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    by_day = _dated_records(store, clock)
    store.purge_expired(retention_days=2, today=date(2025, 3, 5))
    first_kept = by_day[date(2025, 3, 3)][0]
    with tampering(db_engine) as connection:
        connection.execute(
            sa.text("DELETE FROM audit_records WHERE seq = :s"), {"s": first_kept.seq}
        )

    report = store.verify()

    assert (report.ok, report.problem, report.first_bad_seq) == (False, "removed", first_kept.seq)


def test_verify_forged_purge_anchor_reports_removed(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    records = appended(store, 10)
    with tampering(db_engine) as connection:  # delete the first five and pretend it was a purge
        connection.execute(sa.text("DELETE FROM audit_records WHERE seq <= 5"))
        connection.execute(
            sa.text(
                "INSERT INTO audit_purge_anchors (purged_at, cutoff_date, purged_through_seq, "
                "last_purged_hash, n_purged, purge_record_seq) VALUES (:t, :d, 5, :h, 5, 11)"
            ),
            {"t": clock.now, "d": date(2025, 1, 1), "h": records[4].record_hash},
        )

    report = store.verify()

    assert (report.ok, report.problem, report.first_bad_seq) == (False, "removed", 5)
    assert "no matching purge record" in report.message


def test_purge_refuses_when_chain_broken(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    appended(store, 4)
    with tampering(db_engine) as connection:
        connection.execute(sa.text("DELETE FROM audit_records WHERE seq = 2"))

    with pytest.raises(AuditChainBroken, match="seq 2"):
        store.purge_expired(retention_days=0, today=date(2030, 1, 1))
    assert count_records(db_engine) == 3


def test_purge_record_is_part_of_the_chain(db_engine, clock):
    store = AuditStore(db_engine, clock=clock)
    records = appended(store, 4)
    clock.advance(days=10)

    store.purge_expired(retention_days=5, today=clock.now.date())

    with db_engine.connect() as connection:
        kinds = connection.execute(sa.text("SELECT kind, payload FROM audit_records")).all()
    assert [k for k, _ in kinds] == [PURGE_KIND]
    assert json.loads(kinds[0][1])["last_purged_hash"] == records[-1].record_hash


# --- command line ----------------------------------------------------------------------------


@pytest.fixture
def cli(db_url, monkeypatch):
    """Invoke `arscore keys|audit ...` against the test database."""
    monkeypatch.setenv("ARSCORE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_cli_audit_verify_intact_exits_0_broken_exits_1_naming_record(cli, db_engine):
    records = appended(AuditStore(db_engine), 3)

    intact = cli("audit", "verify")
    with tampering(db_engine) as connection:
        connection.execute(sa.text("UPDATE audit_records SET claim_id = 'X' WHERE seq = 2"))
    broken = cli("audit", "verify")

    assert intact.exit_code == 0 and "3 records" in intact.output
    assert records[-1].record_hash in intact.output
    assert broken.exit_code == 1
    assert "seq 2" in broken.output and records[1].score_id in broken.output


def test_cli_audit_export_writes_rows_in_range(cli, db_engine, clock, tmp_path):
    _dated_records(AuditStore(db_engine, clock=clock), clock)
    out = tmp_path / "export.parquet"

    result = cli(
        "audit",
        "export",
        "--from",
        "2025-03-04",
        "--to",
        "2025-03-04",
        "--format",
        "parquet",
        "--out",
        str(out),
    )

    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 3
    assert (
        cli(
            "audit", "export", "--from", "03/04/2025", "--to", "2025-03-04", "--out", str(out)
        ).exit_code
        != 0
    )


def test_cli_audit_purge_uses_retention_from_settings(cli, db_engine, clock, monkeypatch):
    store = AuditStore(db_engine, clock=clock)
    _dated_records(store, clock)
    monkeypatch.setenv("ARSCORE_AUDIT_RETENTION_DAYS", str(6 * 365 + 2))
    get_settings.cache_clear()
    as_of = (date(2025, 3, 3) + timedelta(days=6 * 365 + 2)).isoformat()  # cutoff: March 3

    result = cli("audit", "purge", "--as-of", as_of)

    assert result.exit_code == 0, result.output
    assert "purged 6 records" in result.output
    assert store.verify().ok


def test_new_score_ids_are_distinct_time_ordered_version_7_uuids():
    before_ms = time.time_ns() // 1_000_000
    ids = new_score_ids(5000)
    after_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == 5000
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.hex == value and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= int(value[:12], 16) <= after_ms  # unix milliseconds, RFC 9562
    assert new_score_ids(0) == []


def test_later_score_ids_sort_after_earlier_ones():
    """Time-ordered ids go to the end of the score_id index, not to random pages of it."""
    now_ns = 1_790_000_000_123_456_789
    earlier = new_score_ids(300, now_ns=now_ns)
    later = new_score_ids(300, now_ns=now_ns + 1_000_000)  # one millisecond on
    assert max(earlier) < min(later)
    assert {value[:12] for value in earlier} == {f"{now_ns // 1_000_000:012x}"}


def test_append_ids_records_like_append_and_returns_the_score_ids_in_order(db_engine):
    store = AuditStore(db_engine)
    entries = [score_entry(i) for i in range(5)]
    entries[2] = replace(entries[2], score_id="chosen-id")
    ids = store.append_ids(entries)
    assert len(ids) == 5 and ids[2] == "chosen-id"
    for score_id, entry in zip(ids, entries, strict=True):
        stored = store.get(score_id)
        assert stored.claim_id == entry.claim_id and stored.payload == entry.payload
    assert [r.score_id for r in appended(store, 3)] != ids[:3]
    assert store.verify().ok and store.verify().n_records == 8

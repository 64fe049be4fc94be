"""The user or system behind each record: under its hash, while records written before the
field existed still verify; on SQLite and PostgreSQL.

``data/trail_before_users.csv`` is a trail written and exported (``arscore audit export``) by
arscore before records named users (the code of migration 0006's time), kept as evidence of the
old hash: loading it into a migrated database and verifying it is the test that old trails
survive the change."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.audit.tables import audit_chain_head, audit_records
from tests.serving.conftest import tampering

OLD_TRAIL = Path(__file__).parent / "data" / "trail_before_users.csv"
NULLABLE = ("requester_key_id", "requester_role", "model_name", "model_version", "model_sha256")
NULLABLE += ("policy_version", "claim_id")


def load_old_trail(engine) -> list[dict]:
    """The exported records put back into the trail as they were stored, and the head moved."""
    with open(OLD_TRAIL, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["seq"] = int(row["seq"])
        row["created_at"] = datetime.fromisoformat(row["created_at"])
        for name in NULLABLE:
            row[name] = row[name] or None
    with engine.begin() as connection:
        connection.execute(sa.insert(audit_records), rows)
        connection.execute(
            sa.update(audit_chain_head)
            .where(audit_chain_head.c.id == 1)
            .values(last_seq=rows[-1]["seq"], last_hash=rows[-1]["record_hash"])
        )
    return rows


def entry(user: str | None = None, system: str | None = None) -> AuditEntry:
    return AuditEntry(
        "account_action",
        "k1",
        "collector",
        "arscore",
        "3",
        "a" * 64,
        "p1",
        "C1",
        {"action": "worked"},
        requester_user=user,
        requester_system=system,
    )


def test_trail_written_before_users_verifies_and_extends_with_named_records(db_engine):
    old = load_old_trail(db_engine)
    store = AuditStore(db_engine)
    assert store.verify().ok

    store.append([entry(user="dana"), entry(system="epic-rcm"), entry()])
    report = store.verify()

    assert report.ok and report.n_records == len(old) + 3
    stored = store.get(old[1]["score_id"])
    assert stored.requester_user is None and stored.record_hash == old[1]["record_hash"]


@pytest.mark.parametrize(
    ("seq", "values"),
    [
        (2, {"requester_user": "dana"}),  # an old record given a user afterwards
        (5, {"requester_user": None}),  # a new record's user removed
        (5, {"requester_user": "ali"}),  # ... or changed
        (6, {"requester_system": "other-system"}),
    ],
)
def test_requester_user_or_system_changed_breaks_the_chain(db_engine, seq, values):
    load_old_trail(db_engine)
    store = AuditStore(db_engine)
    store.append([entry(user="dana"), entry(system="epic-rcm")])

    with tampering(db_engine) as connection:
        connection.execute(
            sa.update(audit_records).where(audit_records.c.seq == seq).values(**values)
        )
    report = store.verify()

    assert not report.ok
    assert (report.first_bad_seq, report.problem) == (seq, "altered")


def test_record_names_user_and_system_as_given(db_engine):
    store = AuditStore(db_engine)
    (named,) = store.append([entry(user="dana")])
    (system,) = store.append([entry(system="epic-rcm")])

    assert (named.requester_user, named.requester_system) == ("dana", None)
    assert store.get(system.score_id).requester_system == "epic-rcm"
    assert store.get(named.score_id) == named


def test_export_carries_the_requester_user(db_engine, tmp_path):
    store = AuditStore(db_engine)
    (record,) = store.append([entry(user="dana")])
    out = tmp_path / "trail.csv"

    store.export(record.created_at.date(), record.created_at.date(), "csv", out)

    with open(out, newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["requester_user"] == "dana" and row["record_hash"] == record.record_hash

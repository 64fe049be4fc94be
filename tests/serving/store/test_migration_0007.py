"""Migration 0007 (users, key owners, the user in audit records, write-off requests): a database
of the revision before keeps its keys and its trail; downgrade refuses to break hashes and
stops disabled users' keys; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from serving.access.keys import KeyStore, Principal, token_sha256
from serving.access.users import UserStore
from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.store.engine import current_revision, downgrade, upgrade
from tests.serving.audit.test_requester import load_old_trail

TOKEN = "ars_00112233aabbccdd_" + "s" * 43


def _key_of_before(engine) -> None:
    """A key as 0006 stored it: no owner columns yet."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO api_keys (key_id, role, label, token_sha256, created_at) "
                "VALUES ('00112233aabbccdd', 'collector', 'old', :digest, CURRENT_TIMESTAMP)"
            ),
            {"digest": token_sha256(TOKEN)},
        )


def test_migration_0007_keeps_the_keys_and_trail_of_the_revision_before(db_engine):
    downgrade(db_engine, "0006")
    _key_of_before(db_engine)
    with db_engine.begin() as connection:  # the trail as 0006 has it: no requester_user column
        columns = {c["name"] for c in sa.inspect(connection).get_columns("audit_records")}
    assert "requester_user" not in columns

    upgrade(db_engine)
    load_old_trail(db_engine)

    assert current_revision(db_engine) == "0007"
    assert KeyStore(db_engine).authenticate(TOKEN) == Principal("00112233aabbccdd", "collector")
    store = AuditStore(db_engine)
    store.append([AuditEntry("score", "k", "scorer", None, None, None, None, "C1", {},
                             requester_user="dana")])  # fmt: skip
    assert store.verify().ok


def test_migration_0007_downgrade_refused_while_records_name_a_user(db_engine):
    AuditStore(db_engine).append(
        [AuditEntry("score", "k", "scorer", None, None, None, None, None, {}, None, "dana")]
    )

    with pytest.raises(RuntimeError, match="would break their hashes"):
        downgrade(db_engine, "0006")

    assert current_revision(db_engine) == "0007"
    assert AuditStore(db_engine).verify().ok


def test_migration_0007_downgrade_revokes_disabled_users_keys(db_engine):
    users, keys = UserStore(db_engine), KeyStore(db_engine)
    users.create("dana", "collector")
    users.create("old", "collector")
    _, active = keys.create(user="dana")
    _, stopped = keys.create(user="old")
    users.disable("old")

    downgrade(db_engine, "0006")

    with db_engine.connect() as connection:
        revoked = dict(
            connection.execute(sa.text("SELECT token_sha256, revoked_at FROM api_keys")).all()
        )
    assert revoked[token_sha256(stopped)] is not None  # the old code cannot see "disabled"
    assert revoked[token_sha256(active)] is None

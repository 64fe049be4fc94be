"""The server's SQLite connections leave WAL checkpoints to a background thread, which keeps the
WAL from growing; elsewhere (the CLI, PostgreSQL) nothing changes."""

from __future__ import annotations

import time

import sqlalchemy as sa

from serving.audit import AuditStore
from serving.db import WalCheckpointer, make_engine, upgrade
from tests.serving.test_audit import score_entry


def _autocheckpoint(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()


def _frames(engine: sa.Engine) -> tuple[int, int]:
    """The WAL's frames and how many of them are checkpointed (a look, no checkpoint)."""
    with engine.connect() as connection:
        busy, log, done = connection.exec_driver_sql("PRAGMA wal_checkpoint(NOOP)").one()
    return log, done


def _fill(store: AuditStore) -> None:
    """1,500 records of ~3 KB: past the 1,000 WAL pages at which a commit would checkpoint."""
    for start in range(0, 1500, 300):
        store.append([score_entry(i, note="x" * 3000) for i in range(start, start + 300)])


def test_background_checkpoint_engines_do_not_checkpoint_in_commits(tmp_path):
    plain = make_engine(f"sqlite:///{tmp_path}/a.db")
    deferred = make_engine(f"sqlite:///{tmp_path}/b.db", background_checkpoints=True)
    try:
        assert _autocheckpoint(plain) == 1000  # SQLite's default
        assert _autocheckpoint(deferred) == 0
    finally:
        plain.dispose()
        deferred.dispose()


def test_checkpointer_copies_the_wal_into_the_database_and_stops_cleanly(tmp_path):
    path = tmp_path / "audit.db"
    engine = make_engine(f"sqlite:///{path}", background_checkpoints=True)
    upgrade(engine)
    store = AuditStore(engine)
    _fill(store)
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 1000 * 4096  # past the point a commit would have checkpointed
    log, _ = _frames(engine)  # no commit checkpointed and restarted the WAL
    assert log > 1000

    checkpointer = WalCheckpointer(engine, interval=0.05)
    checkpointer.start()
    checkpointer.stop()  # joins the thread, then checkpoints once more

    log, done = _frames(engine)
    assert done == log
    assert store.verify().ok and store.verify().n_records == 1500
    engine.dispose()


def test_checkpointer_thread_checkpoints_while_the_server_runs(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/audit.db", background_checkpoints=True)
    upgrade(engine)
    store = AuditStore(engine)
    checkpointer = WalCheckpointer(engine, interval=0.01)
    checkpointer.start()
    try:
        _fill(store)
        deadline = time.monotonic() + 10
        while (frames := _frames(engine))[1] < frames[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        log, done = frames
        assert done == log  # caught up: nothing but the thread checkpoints (test above)
    finally:
        checkpointer.stop()
    engine.dispose()


def test_checkpointer_does_nothing_on_postgresql(postgres_url):
    engine = make_engine(postgres_url, background_checkpoints=True)
    checkpointer = WalCheckpointer(engine)
    checkpointer.start()
    assert checkpointer._thread is None
    checkpointer.stop()  # no thread, no checkpoint to run
    engine.dispose()

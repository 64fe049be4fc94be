"""The audit append of a 1,000-score request into a large SQLite trail: ids, page sizes, indexes.

Usage: .venv/bin/python bench/bench_audit_append.py [--compare ids|page-size|claim-index]
       [--prefill 300000]
       [--batch 1000] [--repeats 20] [--workdir DIR] [--busy-thread]

Builds an audit database (migrations, WAL, ``synchronous=FULL`` as the server runs it) holding
``--prefill`` score records with version-4 score ids, as a trail written before time-ordered ids
would hold, and copies it once per kind compared. Then appends ``--repeats`` batches of
``--batch`` score records through ``AuditStore.append_ids`` to each copy, alternating between
them:

* ``--compare ids`` (default): one copy with version-4 ids (``uuid.uuid4``, what arscore used
  before), the other with ``new_score_ids`` (version 7, time ordered);
* ``--compare page-size``: both with ``new_score_ids``, one copy rebuilt (``VACUUM``) with 4 KiB
  pages, SQLite's default and what files made before ``serving.store.engine.SQLITE_PAGE_SIZE`` have,
  the other rebuilt with 16 KiB pages, what new files get now;
* ``--compare claim-index``: both with ``new_score_ids``, one copy with the index on claim_id
  that migration 0006 dropped (created again on the copy), the other as migrations leave it.

The records are synthetic but shaped like a score without reasons (44 feature values, a
recommendation with two sentences: ~1.6 KB of payload). Prints wall and CPU time per append
(median and 90th percentile), the WAL frames one append writes, and the ratio. Timings on a
shared machine are noisy: compare ratios.

``--busy-thread`` runs a thread that only computes, in this process, while the appends are
timed: what a second request of the same server worker does meanwhile. An append then waits for
the GIL each time it lets go of it, while it holds the trail's write lock that every worker
waits on; its wall time is what to read (its CPU time includes the busy thread's).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import NamedTuple
from unittest import mock

from busy_thread import busy_thread

from serving.audit import store as audit_store
from serving.audit.records import AuditEntry, new_score_ids
from serving.audit.store import AuditStore
from serving.store.engine import make_engine, upgrade

N_FEATURES = 44
CLAIM_INDEX = "ix_audit_records_claim_id"


class Copy(NamedTuple):
    """How one copy of the prefilled trail is set up and appended to."""

    ids: Callable[..., list[str]] = new_score_ids  # score ids of the measured appends
    page_size: int | None = None  # rebuilt with these pages (None: as prefilled)
    claim_index: bool = False  # the index on claim_id created again


def score_entry(rng: random.Random) -> AuditEntry:
    """One synthetic score record, shaped like the scores route's (no reasons)."""
    features = {
        f"feature_{j}": rng.random() if j % 7 else f"level_{rng.randrange(9)}"
        for j in range(N_FEATURES)
    }
    sentences = [
        {"source": "rule", "rule_id": "timely_filing", "sentence": "The payer has 23 days left."},
        {"source": "policy", "rule_id": "net", "sentence": "Expected net recovery is $12.00."},
    ]
    payload = {
        "as_of": date(2026, 9, 30),
        "patient_key": f"{rng.getrandbits(256):064x}",
        "model_alias": "champion",
        "features": features,
        "probability_collected": rng.random(),
        "expected_recovery": "12.34",
        "risk_band": "low",
        "reasons": [],
        "recommendation": {
            "action": "follow_up",
            "reasons": sentences,
            "policy_version": "policy-1+cfg-0123456789ab",
            "expected_net_recovery": 12.0,
        },
    }
    return AuditEntry(
        kind="score",
        requester_key_id=f"{rng.getrandbits(64):016x}",
        requester_role="scorer",
        model_name="arscore",
        model_version="1",
        model_sha256="a" * 64,
        policy_version="policy-1+cfg-0123456789ab",
        claim_id=f"C{rng.getrandbits(40):012d}",
        payload=payload,
    )


def version_4_ids(count: int, now_ns: int | None = None) -> list[str]:
    """What arscore's score ids were before: random version-4 UUIDs."""
    return [uuid.uuid4().hex for _ in range(count)]


def store(path: Path) -> AuditStore:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    return AuditStore(engine)


def prefill(path: Path, n_records: int, batch: int, rng: random.Random) -> None:
    trail = store(path)
    started = time.perf_counter()
    with mock.patch.object(audit_store, "new_score_ids", version_4_ids):
        for done in range(0, n_records, batch):
            trail.append_ids([score_entry(rng) for _ in range(min(batch, n_records - done))])
            if (done // batch) % 50 == 0:
                print(f"  prefill {done:>9,} / {n_records:,} records", flush=True)
    trail.engine.dispose()
    size = path.stat().st_size / 2**20
    seconds = time.perf_counter() - started
    print(f"prefilled {n_records:,} records in {seconds:.0f} s: {size:,.0f} MiB")


def measure(trail: AuditStore, batch: int, rng: random.Random, ids: object) -> tuple[float, float]:
    """Wall and CPU seconds of one append of ``batch`` records (entries built beforehand)."""
    entries = [score_entry(rng) for _ in range(batch)]
    with mock.patch.object(audit_store, "new_score_ids", ids):
        wall, cpu = time.perf_counter(), time.process_time()
        trail.append_ids(entries)
        return time.perf_counter() - wall, time.process_time() - cpu


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"median {1000 * statistics.median(values):6.1f} ms, p90 {1000 * p90:6.1f} ms"


def rebuilt(path: Path, page_size: int) -> None:
    """The file rewritten (``VACUUM``) with ``page_size`` pages, back in WAL mode."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = DELETE")
        connection.execute(f"PRAGMA page_size = {page_size}")
        connection.execute("VACUUM")
        connection.execute("PRAGMA journal_mode = WAL")
        found = connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()
    if found != page_size:
        raise SystemExit(f"{path}: page size {found} after VACUUM, expected {page_size}")


def with_claim_index(path: Path) -> None:
    """The audit trail's index on claim_id, as migrations before 0006 left it."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(f"CREATE INDEX {CLAIM_INDEX} ON audit_records (claim_id)")
    finally:
        connection.close()


def wal_frames(trail: AuditStore, batch: int, rng: random.Random) -> int:
    """WAL frames (pages) written by one append, checkpoints held off meanwhile."""
    with trail.engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        driver.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            trail.append_ids([score_entry(rng) for _ in range(batch)])
            frames = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        finally:
            driver.execute("PRAGMA wal_autocheckpoint = 1000")
    return int(frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=["ids", "page-size", "claim-index"], default="ids")
    parser.add_argument("--prefill", type=int, default=300_000, help="records already stored")
    parser.add_argument("--batch", type=int, default=1_000, help="records per append")
    parser.add_argument("--repeats", type=int, default=20, help="appends measured per kind")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument(
        "--busy-thread", action="store_true", help="a computing thread beside the appends"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_audit_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    base = workdir / "prefilled.db"
    if not base.exists():
        prefill(base, args.prefill, args.batch, rng)
    if args.compare == "ids":
        kinds = {"version 4 (random)": Copy(ids=version_4_ids)}
        kinds["version 7 (time-ordered)"] = Copy()
    elif args.compare == "page-size":
        kinds = {"4 KiB pages": Copy(page_size=4096), "16 KiB pages": Copy(page_size=16384)}
    else:
        kinds = {"with the claim_id index": Copy(claim_index=True), "without it (0006)": Copy()}
    trails, times = {}, {}
    for number, (name, kind) in enumerate(kinds.items()):
        copy = workdir / f"copy_{number}.db"
        shutil.copyfile(base, copy)
        if kind.page_size is not None:
            rebuilt(copy, kind.page_size)
        if kind.claim_index:
            with_claim_index(copy)
        trails[name], times[name] = store(copy), ([], [])
    with busy_thread(args.busy_thread):
        for _ in range(args.repeats):
            for name, kind in kinds.items():
                wall, cpu = measure(trails[name], args.batch, rng, kind.ids)
                times[name][0].append(wall)
                times[name][1].append(cpu)
    beside = ", beside a busy thread" if args.busy_thread else ""
    print(
        f"\n{args.repeats} appends of {args.batch:,} score records onto {args.prefill:,} "
        f"stored{beside}"
    )
    for name, (walls, cpus) in times.items():
        with mock.patch.object(audit_store, "new_score_ids", kinds[name].ids):
            frames = wal_frames(trails[name], args.batch, rng)
        print(f"  {name:26s} wall {summary(walls)}; cpu {summary(cpus)}; {frames:,} WAL frames")
    first, second = kinds
    for label, at in (("wall", 0), ("cpu", 1)):
        old, new = (statistics.median(times[name][at]) for name in (first, second))
        print(f"median {label}, {first} / {second}: {old / new:.2f}x")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long a history send holds the SQLite write lock, alone and beside a busy thread.

Usage: .venv/bin/python bench/bench_history_upsert.py [--claims 1000] [--repeats 3] [--busy-thread]
       [--postgres postgresql://postgres@127.0.0.1:5432]

``POST /v1/history`` stores claims and transactions with ``HistoryStore.upsert`` in one write
transaction: it holds the file's write lock, which every worker's audit append waits for (and
answers 503 after the busy timeout). Generates a synthetic history (seeded, as ``arscore
generate``), takes ``--claims`` claims with their transactions, and times on a new SQLite file:
the first upsert (all claims and transactions new) and a second one in which every claim's total
charge changed (every claim updated, every transaction already stored), after one such pair on a
file of its own to warm up (the first upsert of a process also imports and compiles).

With ``--busy-thread`` a thread that only computes runs beside them, as another request of the
same server worker would: each time the upsert lets go of the GIL (a database step per row sent
or read) it may then wait up to the switch interval (5 ms) to get it back.

With ``--postgres SERVER`` each file is a new database on that PostgreSQL server instead (made
and dropped by the bench, named ``bench_history_upsert_N``); history sends there hold an advisory
lock that other history sends wait for.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from busy_thread import busy_thread
from machine import python_speed_ms, speed_note

from features.history import validate_history
from serving.history.store import HistoryStore
from serving.store.engine import make_engine, upgrade
from training.synthetic import GeneratorConfig, generate_history


@contextlib.contextmanager
def database(number: int, workdir: Path, postgres: str | None) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file in ``workdir``, or a database made on the
    PostgreSQL server ``postgres`` and dropped afterwards."""
    if postgres is None:
        yield f"sqlite:///{workdir / f'history_{number}.db'}"
        return
    server = postgres.rstrip("/")
    name = f"bench_history_upsert_{number + 1}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1_000, help="claims per upsert")
    parser.add_argument("--repeats", type=int, default=3, help="new files measured")
    parser.add_argument(
        "--busy-thread", action="store_true", help="a computing thread beside the upserts"
    )
    parser.add_argument("--postgres", help="PostgreSQL server URL (default: SQLite files)")
    args = parser.parse_args()
    if args.claims < 1 or args.repeats < 1:
        parser.error("--claims and --repeats must be at least 1")
    raw_claims, raw_transactions = generate_history(GeneratorConfig(n_claims=args.claims, seed=7))
    history = validate_history(raw_claims, raw_transactions, secrets.token_bytes(32))
    claims, transactions = history.claims, history.transactions
    changed = claims.copy()
    changed["total_charge"] = changed["total_charge"] * 2
    workdir = Path(tempfile.mkdtemp(prefix="bench_history_"))
    speed_before = python_speed_ms()
    first, second = [], []
    try:
        with busy_thread(args.busy_thread):
            for number in range(-1, args.repeats):
                with database(number, workdir, args.postgres) as url:
                    engine = make_engine(url)
                    upgrade(engine)
                    store = HistoryStore(engine)
                    for frame, times in ((claims, first), (changed, second)):
                        started = time.perf_counter()
                        store.upsert(frame, transactions)
                        if number >= 0:  # -1 warms up
                            times.append(time.perf_counter() - started)
                    engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    beside = ", beside a busy thread" if args.busy_thread else ""
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{len(claims):,} claims, {len(transactions):,} transactions on {where}{beside}:")
    print(f"  {speed_note(speed_before, python_speed_ms())}")
    for name, times in (("new", first), ("every claim changed", second)):
        runs = ", ".join(f"{1000 * t:,.0f}" for t in times)
        print(f"  {name:20s} median {1000 * statistics.median(times):8,.0f} ms  ({runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

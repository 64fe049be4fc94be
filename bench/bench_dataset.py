"""Time `arscore dataset` (read + validate + snapshots + labels + write) on ~1M transactions.

Usage: .venv/bin/python bench/bench_dataset.py [--transactions 1000000] [--seed 7]
Prints the history size, time per stage, and rows per second.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from arscore.io import write_frame_atomic
from features.history import read_history
from features.snapshots import LabelConfig, build_snapshots, snapshot_calendar
from training.synthetic import GeneratorConfig, generate_history, write_history

BENCH_KEY = b"bench-pseudonym-key-not-a-secret"


def generate_at_least(n_transactions: int, seed: int, workdir: Path) -> Path:
    """Generate a history with at least the requested number of transactions."""
    probe_claims, probe_tx = generate_history(GeneratorConfig(n_claims=5_000, seed=seed))
    per_claim = len(probe_tx) / len(probe_claims)
    n_claims = int(n_transactions / per_claim * 1.02) + 1
    claims, transactions = generate_history(GeneratorConfig(n_claims=n_claims, seed=seed))
    write_history(claims, transactions, workdir, "parquet")
    return workdir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        history_dir = generate_at_least(args.transactions, args.seed, Path(tmp) / "history")
        started = time.perf_counter()
        history = read_history(history_dir, BENCH_KEY)
        read_s = time.perf_counter() - started
        calendar = snapshot_calendar(
            history.claims["billed_date"].min(), history.transactions["date"].max()
        )
        started = time.perf_counter()
        snapshots = build_snapshots(history, calendar, LabelConfig())
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        write_frame_atomic(snapshots, Path(tmp) / "dataset.parquet")
        write_s = time.perf_counter() - started
    total = read_s + build_s + write_s
    n_tx = len(history.transactions)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"history: {len(history.claims):,} claims, {n_tx:,} transactions")
    print(f"snapshots: {len(snapshots):,} rows over {len(calendar)} monthly as-of dates")
    print(f"read+validate {read_s:6.2f} s  ({n_tx / read_s:,.0f} transactions/s)")
    print(f"snapshots     {build_s:6.2f} s  ({len(snapshots) / build_s:,.0f} snapshots/s)")
    print(f"write         {write_s:6.2f} s")
    print(f"total         {total:6.2f} s  ({n_tx / total:,.0f} transactions/s end to end)")
    print(f"peak RSS      {peak_mib:,.0f} MiB (includes generating the history)")
    print(f"pandas {pd.__version__}, python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

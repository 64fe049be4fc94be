"""Snapshot building from a history of 10 million transactions: time and peak memory.

Usage: .venv/bin/python bench/bench_snapshots_10m.py [--transactions 10000000]
       [--modes whole,partitioned] [--workdir bench/out/snapshots_10m]

Generates (once, kept in the workdir) a synthetic history with at least ``--transactions``
transactions, then runs, each in a fresh process so each peak is its own, what
`arscore dataset` does: read and validate the history, build labelled month-end snapshots over
the whole calendar, write them to Parquet. Modes:

* ``whole``: one ``build_snapshots`` call over the whole history (today's `arscore dataset`);
* ``partitioned``: the history split by patient (``features.patient_partitions``), snapshots built
  partition by partition and combined (equal row for row; bounded intermediates);
* ``local:N``: the partitions built on a Dask LocalCluster of N workers (peak of the client
  process only; the workers are separate processes).

Prints seconds per stage and peak RSS (VmHWM) per mode. The budget is 24 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

BENCH_KEY = b"bench-pseudonym-key-not-a-secret"
BUDGET_GIB = 24


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(n_transactions: int, seed: int, directory: Path) -> Path:
    """A history with at least ``n_transactions`` transactions (reused if already there)."""
    from training.synthetic import GeneratorConfig, generate_history, write_history

    if (directory / "transactions.parquet").exists():
        return directory
    _, probe = generate_history(GeneratorConfig(n_claims=5_000, seed=seed))
    n_claims = int(n_transactions / (len(probe) / 5_000) * 1.02) + 1
    claims, transactions = generate_history(GeneratorConfig(n_claims=n_claims, seed=seed))
    write_history(claims, transactions, directory, "parquet")
    return directory


def child(mode: str, history_dir: Path, out: Path, claims_per_partition: int) -> dict:
    """Read, build, write in this process; the timings and the peak."""
    from arscore.io import write_frame_atomic
    from features.history import read_history
    from features.patient_partitions import (
        build_snapshots_on,
        build_snapshots_partitioned,
        partition_count,
    )
    from features.snapshots import LabelConfig, build_snapshots, snapshot_calendar

    started = time.perf_counter()
    history = read_history(history_dir, BENCH_KEY)
    read_s = time.perf_counter() - started
    calendar = snapshot_calendar(
        history.claims["billed_date"].min(), history.transactions["date"].max()
    )
    started = time.perf_counter()
    if mode == "whole":
        snapshots = build_snapshots(history, calendar, LabelConfig())
    elif mode == "partitioned":
        n = partition_count(history, claims_per_partition)
        snapshots = build_snapshots_partitioned(history, calendar, LabelConfig(), n_partitions=n)
    else:
        snapshots = build_snapshots_on(mode, history, calendar, LabelConfig())
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    write_frame_atomic(snapshots, out)
    write_s = time.perf_counter() - started
    return {
        "mode": mode,
        "claims": len(history.claims),
        "transactions": len(history.transactions),
        "as_of_dates": len(calendar),
        "snapshots": len(snapshots),
        "read_s": read_s,
        "build_s": build_s,
        "write_s": write_s,
        "peak_mib": peak_rss_mib(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--modes", default="whole,partitioned")
    parser.add_argument("--claims-per-partition", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/snapshots_10m"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    history_dir = args.workdir / "history"
    if args.child:
        result = child(
            args.child, history_dir, args.workdir / "dataset.parquet", args.claims_per_partition
        )
        print(json.dumps(result))
        return 0
    started = time.perf_counter()
    generate(args.transactions, args.seed, history_dir)
    print(f"history ready in {time.perf_counter() - started:.0f} s: {history_dir}")
    for mode in args.modes.split(","):
        command = [sys.executable, __file__, "--child", mode, "--workdir", str(args.workdir)]
        command += ["--claims-per-partition", str(args.claims_per_partition)]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        report(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"pandas {pd.__version__}, python {sys.version.split()[0]}")
    return 0


def report(result: dict) -> None:
    """One mode's line of figures."""
    total = result["read_s"] + result["build_s"] + result["write_s"]
    peak_gib = result["peak_mib"] / 1024
    print(
        f"{result['mode']:12s} {result['claims']:,} claims, {result['transactions']:,} "
        f"transactions -> {result['snapshots']:,} snapshots over {result['as_of_dates']} dates: "
        f"read {result['read_s']:.0f} s, build {result['build_s']:.0f} s, "
        f"write {result['write_s']:.0f} s, total {total:.0f} s; peak RSS {peak_gib:.1f} GiB "
        f"({'within' if peak_gib <= BUDGET_GIB else 'OVER'} the {BUDGET_GIB} GiB budget)"
    )


if __name__ == "__main__":
    sys.exit(main())

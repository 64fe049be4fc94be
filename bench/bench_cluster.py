"""Scale-out of `arscore score` on Dask: this machine alone, then 1 and 2 LocalCluster workers.

Usage: .venv/bin/python bench/bench_cluster.py [--claims 400000] [--rows 400000]
       [--workers 1,2] [--workdir bench/out/cluster]

Trains the bench model (``bench_batch.build_model``), writes a synthetic history of ``--claims``
claims and a snapshot table of ``--rows`` rows, then times the `arscore score` command end to
end (CliRunner, in process; the cluster is started before the clock starts):

* ``--snapshots FILE``: the client reads chunks, workers score, the client writes;
* ``--history DIR --as-of DATE``: the client reads and validates the history and splits it by
  patient, workers build the snapshots of their partitions and score them, the client writes.

Each Dask worker is one process with one thread (LightGBM predicts on one core: the nanny sets
OMP_NUM_THREADS=1); "no cluster" is one process using every core. Also prints the single-worker
cost per row, the input of the cluster-size estimate in the README.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import typer
from bench_batch import build_model, write_table
from distributed import Client, LocalCluster
from typer.testing import CliRunner

from arscore.commands_batch import register
from features.history import read_history
from training.synthetic import GeneratorConfig, generate_history, write_history

BENCH_KEY = "bench-pseudonym-key-not-a-secret"
AS_OF = "2026-06-30"


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    return app


def timed_score(app: typer.Typer, arguments: list[str]) -> float:
    """Wall-clock seconds of one `arscore score` run (fails loudly)."""
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["score", *arguments])
    if result.exit_code != 0:
        raise RuntimeError(f"arscore score failed: {result.output}\n{result.exception!r}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=400_000)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="arscore-bench-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["ARSCORE_PSEUDONYM_KEY"] = BENCH_KEY
    os.environ["ARSCORE_DATABASE_URL"] = f"sqlite:///{workdir}/audit.db"
    model_dir, rows = build_model(30_000, args.seed, workdir)
    table = write_table(rows, args.rows, workdir / "snapshots.parquet", args.seed)
    claims, transactions = generate_history(GeneratorConfig(n_claims=args.claims, seed=args.seed))
    write_history(claims, transactions, workdir / "history", "parquet")
    chunking = ["--chunk-rows", str(args.chunk_rows)]
    inputs = {
        "snapshots": ["--snapshots", str(table), *chunking],
        "history": ["--history", str(workdir / "history"), "--as-of", AS_OF, *chunking],
    }
    app = cli()
    results: dict[tuple[str, str], float] = {}
    balances = 0
    for kind, source in inputs.items():
        out = workdir / f"scored_{kind}.parquet"
        results[(kind, "no cluster")] = timed_score(
            app, [*source, "--out", str(out), "--model", str(model_dir)]
        )
        if kind == "history":
            balances = len(pd.read_parquet(out, columns=["claim_id"]))
    for n in (int(w) for w in args.workers.split(",")):
        with (
            LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            for kind, source in inputs.items():
                arguments = [*source, "--out", str(workdir / f"scored_{kind}_{n}.parquet")]
                arguments += ["--model", str(model_dir), "--cluster", client.scheduler.address]
                results[(kind, f"{n} worker{'s' if n > 1 else ''}")] = timed_score(app, arguments)
    print_table(results, {"snapshots": args.rows, "history": balances}, len(transactions))
    started = time.perf_counter()
    read_history(workdir / "history", BENCH_KEY.encode())
    seconds = time.perf_counter() - started
    print(f"of which the client reads and validates the history: {seconds:.1f} s")
    return 0


def print_table(results: dict[tuple[str, str], float], rows: dict[str, int], n_tx: int) -> None:
    """Seconds and rows per second per input kind and cluster size."""
    print(f"\n{'input':10s} {'where':12s} {'rows':>10s} {'seconds':>8s} {'rows/s':>9s}")
    for (kind, where), seconds in results.items():
        print(
            f"{kind:10s} {where:12s} {rows[kind]:10,} {seconds:8.1f} {rows[kind] / seconds:9,.0f}"
        )
    print(f"(history: {n_tx:,} transactions, open balances as of {AS_OF})")
    print(f"pandas {pd.__version__}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    sys.exit(main())

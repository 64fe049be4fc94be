"""Batch scoring throughput against LightGBM's own predict, and peak memory at scale.

Usage: .venv/bin/python bench/bench_batch.py [--rows 1000000] [--reasons-rows 100000]
       [--rss-rows 5000000] [--repeats 2] [--workdir bench/out/batch]

Builds a realistic model (the training config's LightGBM defaults, early stopping on a synthetic
history) and a synthetic snapshot table of ``--rows`` open balances (rows of real snapshots drawn
with replacement, fresh claim ids). Then, best of ``--repeats`` runs each:

* the limit: ``Booster.predict`` on a ready float64 matrix, for the classifier and for both
  boosters the model predicts with (probability and expected recovery);
* arscore end to end: snapshot Parquet file -> chunks -> features -> both boosters -> policy ->
  scored Parquet file (atomic), with the batch_run audit entry, exactly the `arscore score` path;
* ``mlflow.pyfunc.load_model(...).predict`` on the same rows, already in memory;
* with reasons: ``Booster.predict(pred_contrib=True)`` and arscore with ``--reasons`` on
  ``--reasons-rows`` rows;
* peak RSS of a separate `arscore score` process on ``--rss-rows`` rows (0 to skip).

Timings on a shared machine are noisy: the ratios are the figures to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.history import validate_history
from features.model import Calibrator, CollectibilityModel
from features.pipeline import FeaturePipeline
from features.snapshots import LABEL_COLUMNS, build_snapshots, snapshot_calendar
from serving.batch.files import DEFAULT_CHUNK_ROWS
from training.config import TrainingConfig
from training.fit import fit_booster, outcomes, recovered_fraction
from training.split import time_split
from training.synthetic import GeneratorConfig, generate_history

BENCH_KEY = b"bench-pseudonym-key-not-a-secret"
JOBS = os.cpu_count() or 1
CLI_SNIPPET = (
    "import atexit, sys, typer; from pathlib import Path; "
    "from arscore.commands_batch import register; "
    "atexit.register(lambda: print(next(line for line in Path('/proc/self/status')"
    ".read_text().splitlines() if line.startswith('VmHWM:')), file=sys.stderr)); "
    "app = typer.Typer(); register(app); app.command('noop')(lambda: None); "
    "sys.argv[0] = 'arscore'; app()"
)


def build_model(n_claims: int, seed: int, workdir: Path) -> tuple[Path, pd.DataFrame]:
    """A model trained like `arscore train` trains the boosters, and unlabelled snapshot rows."""
    claims, transactions = generate_history(GeneratorConfig(n_claims=n_claims, seed=seed))
    history = validate_history(claims, transactions, BENCH_KEY)
    start = history.claims["billed_date"].min() + pd.Timedelta(days=90)
    snapshots = build_snapshots(
        history, snapshot_calendar(start, history.transactions["date"].max())
    )
    config = TrainingConfig()
    split = time_split(snapshots, config.horizon_days)
    pipeline = FeaturePipeline().fit(split.train)
    X_train, X_valid = pipeline.transform(split.train), pipeline.transform(split.validation)
    y_valid = outcomes(split.validation)
    fit = (X_train, outcomes(split.train), X_valid, y_valid, pipeline)
    booster, _ = fit_booster(*fit, config.lightgbm, "binary", config.seed)
    fractions = (recovered_fraction(split.train), recovered_fraction(split.validation))
    recovery, _ = fit_booster(
        X_train,
        fractions[0],
        X_valid,
        fractions[1],
        pipeline,
        config.recovery,
        "cross_entropy",
        config.seed,
    )
    calibrator = Calibrator("isotonic").fit(booster.predict(X_valid), y_valid)
    model = CollectibilityModel(pipeline, booster, calibrator, recovery, {"model_name": "bench"})
    model.save(workdir / "model")
    return workdir / "model", snapshots.drop(columns=[*LABEL_COLUMNS, "censored"])


def write_table(rows: pd.DataFrame, n: int, path: Path, seed: int) -> Path:
    """``n`` snapshot rows drawn with replacement, with unique claim ids, as Parquet."""
    picked = rows.iloc[np.random.default_rng(seed).integers(0, len(rows), n)].reset_index(drop=True)
    picked["claim_id"] = pd.array([f"B{i:010d}" for i in range(n)], dtype="string")
    picked.to_parquet(path, row_group_size=100_000)
    return path


def skip_policy(rows: pd.DataFrame, reasons: object) -> tuple[list[str], str]:
    """A stand-in for the policy stage (diagnostic only)."""
    return ["follow_up"] * len(rows), "none"


def arscore_run(
    model_dir: Path,
    table: Path,
    out: Path,
    reasons: bool,
    db: Path,
    policy: bool = True,
    jobs: int = JOBS,
) -> None:
    """The `arscore score --snapshots` path, in process (``policy=False``: every action
    "follow_up", to show what the policy stage costs)."""
    from serving.audit.store import AuditStore
    from serving.batch.audit import BatchAudit, input_hashes
    from serving.batch.files import read_snapshot_chunks, write_scored
    from serving.batch.parallel import score_chunks
    from serving.batch.scorer import chunk_scorer
    from serving.policy.config import load_policy
    from serving.scoring.loader import load_directory
    from serving.store.engine import make_engine, upgrade

    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    loaded = load_directory(model_dir, now=dt.datetime.now(dt.UTC))
    rules = load_policy()
    scorer = chunk_scorer(loaded, rules, (0.2, 0.5, 0.8), reasons)
    if not policy:
        scorer.actions = skip_policy
    audit = BatchAudit(AuditStore(engine), loaded, rules.version, input_hashes([table]))
    chunks = read_snapshot_chunks(table, scorer.input_columns)
    n_chunks = math.ceil(pq.ParquetFile(table).metadata.num_rows / DEFAULT_CHUNK_ROWS)
    jobs = min(jobs, n_chunks)  # as `arscore score` does: no more processes than chunks
    write_scored(score_chunks(scorer, chunks, jobs), out, before_commit=audit.commit)
    engine.dispose()


def load_pyfunc(model_dir: Path, workdir: Path) -> object:
    """The model as an MLflow pyfunc (saved once), loaded with ``mlflow.pyfunc.load_model``."""
    import mlflow.pyfunc

    from features.pyfunc import MODEL_ARTIFACT_KEY, CollectibilityPyfunc

    target = workdir / "pyfunc"
    if not target.exists():
        mlflow.pyfunc.save_model(
            target,
            python_model=CollectibilityPyfunc(),
            artifacts={MODEL_ARTIFACT_KEY: str(model_dir)},
        )
    return mlflow.pyfunc.load_model(str(target))


def peak_rss_mib(
    model_dir: Path, table: Path, out: Path, db: Path, jobs: int
) -> tuple[float, float, float]:
    """(seconds, peak RSS of the main process, peak summed RSS of the process tree) in MiB of a
    separate `arscore score --snapshots` run. The main process reports its own VmHWM (the rusage
    of children would count this big parent's pages at fork time); the tree (main process and
    its scoring processes) is sampled every 0.2 s."""
    import psutil

    command = [sys.executable, "-c", CLI_SNIPPET, "score", "--snapshots", str(table)]
    command += ["--out", str(out), "--model", str(model_dir), "--jobs", str(jobs)]
    env = {"ARSCORE_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    tree_peak = 0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            members = [watched, *watched.children(recursive=True)]
            tree_peak = max(tree_peak, sum(p.memory_info().rss for p in members))
        except psutil.Error:
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"arscore score failed: {stderr[-2000:]}")
    peak_kib = next(int(line.split()[1]) for line in stderr.splitlines() if "VmHWM:" in line)
    return seconds, peak_kib / 1024, tree_peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reasons-rows", type=int, default=100_000)
    parser.add_argument("--rss-rows", type=int, default=5_000_000)
    parser.add_argument("--claims", type=int, default=30_000, help="history size for the model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--parts", default="throughput,reasons,rss", help="which measurements to run"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="arscore-bench-batch-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir, rows = build_model(args.claims, args.seed, workdir)
    model = CollectibilityModel.load(model_dir)
    print(
        f"model: classifier {model.booster.num_trees()} trees, recovery "
        f"{model.recovery_booster.num_trees()} trees, {len(model.pipeline.feature_names_)} "
        f"features, num_leaves {TrainingConfig().lightgbm.num_leaves}"
    )
    report(args, workdir, model_dir, model, rows)
    return 0


def interleaved(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The fastest wall-clock time of each run, the runs taken in turn ``repeats`` times so a
    busy spell on the shared machine hits them alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def print_table(title: str, rows: int, results: dict[str, float], limit: float) -> None:
    """Seconds, rows/s and share of the limit's throughput of each run."""
    print(f"\n{title:44s} seconds     rows/s   vs limit")
    for name, seconds in results.items():
        print(f"{name:44s} {seconds:7.2f} {rows / seconds:10,.0f} {limit / seconds:10.0%}")


def report(args, workdir: Path, model_dir: Path, model, rows: pd.DataFrame) -> None:
    """Run every measurement and print the tables."""
    parts = set(args.parts.split(","))
    if "throughput" in parts:
        throughput(args, workdir, model_dir, model, rows)
    if "reasons" in parts:
        reasons(args, workdir, model_dir, model, rows)
    if "rss" in parts and args.rss_rows:
        big = write_table(rows, args.rss_rows, workdir / "snapshots_rss.parquet", args.seed + 2)
        for jobs in sorted({1, JOBS}):
            seconds, main_peak, tree_peak = peak_rss_mib(
                model_dir, big, workdir / "scored_rss.parquet", workdir / "audit.db", jobs
            )
            print(
                f"\n`arscore score --jobs {jobs}` on {args.rss_rows:,} rows: {seconds:.1f} s "
                f"({args.rss_rows / seconds:,.0f} rows/s), peak RSS {main_peak:,.0f} MiB "
                f"(main process), {tree_peak:,.0f} MiB (all processes, sampled)"
            )
    print(f"pandas {pd.__version__}, python {sys.version.split()[0]}; workdir {workdir}")


def throughput(args, workdir: Path, model_dir: Path, model, rows: pd.DataFrame) -> None:
    """Without reasons: the boosters' predict, arscore end to end, the pyfunc."""
    table = write_table(rows, args.rows, workdir / "snapshots.parquet", args.seed)
    frame = pd.read_parquet(table)
    X = model.features(frame)
    audit_db = workdir / "audit.db"
    pyfunc = load_pyfunc(model_dir, workdir)
    results = interleaved(
        args.repeats,
        {
            "Booster.predict, both boosters (the limit)": lambda: (
                model.booster.predict(X),
                model.recovery_booster.predict(X),
            ),
            "Booster.predict, classifier only": lambda: model.booster.predict(X),
            f"arscore score --jobs {JOBS} (file to file)": lambda: arscore_run(
                model_dir, table, workdir / "scored.parquet", False, audit_db
            ),
            "arscore score --jobs 1 (file to file)": lambda: arscore_run(
                model_dir, table, workdir / "scored.parquet", False, audit_db, jobs=1
            ),
            f"arscore --jobs {JOBS}, policy skipped (diagnostic)": lambda: arscore_run(
                model_dir, table, workdir / "scored.parquet", False, audit_db, policy=False
            ),
            "mlflow pyfunc predict (rows in memory)": lambda: pyfunc.predict(frame),
        },
    )
    limit = results["Booster.predict, both boosters (the limit)"]
    print_table(f"{args.rows:,} rows, no reasons", args.rows, results, limit)


def reasons(args, workdir: Path, model_dir: Path, model, rows: pd.DataFrame) -> None:
    """With reasons: ``pred_contrib`` against arscore --reasons."""
    audit_db = workdir / "audit.db"
    k = args.reasons_rows
    small = write_table(rows, k, workdir / "snapshots_reasons.parquet", args.seed + 1)
    Xs = model.features(pd.read_parquet(small))
    results = interleaved(
        args.repeats,
        {
            "Booster.predict(pred_contrib=True) (limit)": lambda: model.booster.predict(
                Xs, pred_contrib=True
            ),
            "arscore score --reasons --jobs 1 (the default)": lambda: arscore_run(
                model_dir, small, workdir / "scored_reasons.parquet", True, audit_db, jobs=1
            ),
        },
    )
    limit = results["Booster.predict(pred_contrib=True) (limit)"]
    print_table(f"{k:,} rows, with reasons", k, results, limit)


if __name__ == "__main__":
    sys.exit(main())

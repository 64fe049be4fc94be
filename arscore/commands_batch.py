"""`arscore score`: score every open balance into one Parquet file, here or on a Dask cluster."""

from __future__ import annotations

import datetime as dt
import getpass
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pyarrow as pa
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from features.patient_partitions import (
    DEFAULT_CLAIMS_PER_PARTITION,
    SCHEDULER_ENV,
    cluster_address,
    cluster_client,
    iter_partitions,
    partition_count,
    worker_count,
)

DEFAULT_JOBS = os.cpu_count() or 1
# Below this many claims, starting scoring processes costs more than they save.
MIN_CLAIMS_FOR_PROCESSES = 100_000
CLUSTER_HELP = (
    f"Dask scheduler address (tcp://host:8786), or local:N for a LocalCluster of N workers "
    f"[env: {SCHEDULER_ENV}]"
)


class RowsPerSecond(ProgressColumn):
    """Throughput of a progress task in rows per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


@contextmanager
def rows_progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar of rows with their rate; yields a callback taking rows done."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total)
        yield lambda rows: progress.update(task, advance=rows)


@dataclass
class PreparedRun:
    """Everything a run needs before the first row is scored."""

    loaded: Any
    policy: Any
    history: Any
    scorer: Any
    audit: Any


@dataclass(frozen=True)
class Source:
    """What to score: a snapshot file (all rows, or one as-of date of it) or a history's open
    balances as of a date; in chunks of ``chunk_rows``, history split by patient."""

    snapshots: Path | None
    as_of: pd.Timestamp | None
    chunk_rows: int
    claims_per_partition: int
    jobs: int


def _filter_as_of(
    frames: Iterator[pd.DataFrame], as_of: pd.Timestamp | None
) -> Iterator[pd.DataFrame]:
    for frame in frames:
        if as_of is not None and "as_of" in frame.columns:
            frame = frame[(frame["as_of"] == as_of).to_numpy()]
        if len(frame):
            yield frame


def _scored_tables(
    client: Any, run: PreparedRun, source: Source
) -> tuple[Iterator[pa.Table], int | None]:
    """The scored tables of the run (lazily) and the number of rows if known in advance."""
    from serving.batch import files as batch
    from serving.batch import parallel as batch_parallel
    from serving.batch.dask_scoring import score_frames_on_cluster, score_partitions_on_cluster

    window = 2 * worker_count(client) if client is not None else 0
    if source.snapshots is not None:
        table = batch.open_snapshot_table(source.snapshots)
        total = None if source.as_of is not None else table.metadata.num_rows
        chunks = batch.read_snapshot_chunks(
            source.snapshots, run.scorer.input_columns, source.chunk_rows
        )
        frames = _filter_as_of(chunks, source.as_of)
        if client is None:
            n_chunks = math.ceil(table.metadata.num_rows / source.chunk_rows)
            return batch_parallel.score_chunks(
                run.scorer, frames, min(source.jobs, n_chunks)
            ), total
        return score_frames_on_cluster(client, run.scorer, frames, window), total
    as_of, rows = source.as_of, source.chunk_rows
    n_partitions = partition_count(run.history, source.claims_per_partition)
    if client is None:
        tables = batch_parallel.score_history(
            run.scorer, run.history, as_of, n_partitions, rows, source.jobs
        )
        return tables, None
    parts = iter_partitions(run.history, max(n_partitions, window))
    return score_partitions_on_cluster(client, run.scorer, parts, as_of, rows, window), None


def score(
    out: Annotated[Path, typer.Option(help="scored output file (.parquet)")],
    history: Annotated[
        Path | None, typer.Option(help="history directory: score its open balances as of --as-of")
    ] = None,
    snapshots: Annotated[
        Path | None, typer.Option(help="a prepared snapshot table (.parquet) to score as is")
    ] = None,
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="as-of date (with --snapshots: keep only it)"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION or a saved-model directory "
            "[default: settings model_uri, models:/arscore@champion]"
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="policy YAML [default: settings policy_file, else packaged]")
    ] = None,
    reasons: Annotated[
        bool, typer.Option(help="add up to 4 reasons per row (TreeSHAP: several times slower)")
    ] = False,
    audit_rows: Annotated[
        bool, typer.Option(help="also record one audit entry per score (same chain as the API)")
    ] = False,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows scored per chunk")] = 100_000,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="scoring processes on this machine [default: 1 with --snapshots (LightGBM's "
            "threads use every core), one per core with --history (snapshots are built in "
            "single-threaded pandas)]",
            show_default=False,
        ),
    ] = None,
    cluster: Annotated[str | None, typer.Option(help=CLUSTER_HELP, envvar=SCHEDULER_ENV)] = None,
    claims_per_partition: Annotated[
        int, typer.Option(min=1, help="claims per patient partition of the history")
    ] = DEFAULT_CLAIMS_PER_PARTITION,
) -> None:
    """Score open balances in bulk: probability, expected recovery, band, action, reasons."""
    from serving.batch.files import write_scored

    if (history is None) == (snapshots is None):
        raise typer.BadParameter("give exactly one of --history DIR or --snapshots FILE")
    if history is not None and as_of is None:
        raise typer.BadParameter("--history needs --as-of DATE", param_hint="--as-of")
    started = time.perf_counter()
    when = pd.Timestamp(as_of).normalize() if as_of is not None else None
    jobs = jobs or (1 if snapshots is not None else DEFAULT_JOBS)
    source = Source(snapshots, when, chunk_rows, claims_per_partition, jobs)
    address = cluster_address(cluster)
    with ExitStack() as stack:
        run = _prepare(stack, history, snapshots, model, policy, reasons)
        run.audit.audit_rows = audit_rows
        run.audit.details.update(
            as_of=when.date().isoformat() if when is not None else None,
            reasons=reasons,
            chunk_rows=chunk_rows,
            jobs=None if address else jobs,
            cluster=address,
            operator=getpass.getuser(),
        )
        client = stack.enter_context(cluster_client(address)) if address else None
        tables, total = _scored_tables(client, run, source)
        with rows_progress("scoring", total) as advance:
            outcome = write_scored(tables, out, advance, before_commit=run.audit.commit)
    elapsed = time.perf_counter() - started
    records = f" and {run.audit.score_records:,} score records" if audit_rows else ""
    typer.echo(
        f"scored {outcome.rows:,} open balances in {elapsed:.1f} s "
        f"({outcome.rows / max(elapsed, 1e-9):,.0f} rows/s) with {run.loaded.name} "
        f"version {run.loaded.version}, policy {run.policy.version}: {out}\n"
        f"output sha256 {outcome.output_sha256}; audit: run {run.audit.run_id}{records}"
    )


def _prepare(
    stack: ExitStack,
    history: Path | None,
    snapshots: Path | None,
    model: str | None,
    policy: Path | None,
    reasons: bool,
) -> PreparedRun:
    """Open the audit store (fails fast), load model, policy and input, hash the inputs."""
    from arscore.database import migrated_engine
    from features.history import find_table, read_history
    from features.schema import CLAIMS_FILE_STEM, TRANSACTIONS_FILE_STEM
    from serving.audit.store import AuditStore
    from serving.batch.audit import BatchAudit, input_hashes
    from serving.batch.files import open_snapshot_table
    from serving.batch.scorer import batch_scorer
    from serving.policy.config import load_policy
    from serving.scoring.loader import load_model
    from serving.settings import get_settings

    settings = get_settings()
    engine = stack.enter_context(migrated_engine())
    now = dt.datetime.now(dt.UTC)
    loaded = load_model(model or settings.model_uri, settings.mlflow_tracking_uri, now=now)
    chosen_policy = load_policy(policy or settings.policy_file)
    loaded_history, available = None, None
    if snapshots is not None:
        paths = [snapshots]
        available = open_snapshot_table(snapshots).schema_arrow.names
    else:
        assert history is not None
        paths = [find_table(history, CLAIMS_FILE_STEM), find_table(history, TRANSACTIONS_FILE_STEM)]
        from arscore.secrets import load_pseudonym_key

        loaded_history = read_history(history, load_pseudonym_key())
    audit = BatchAudit(AuditStore(engine), loaded, chosen_policy.version, input_hashes(paths))
    scorer = batch_scorer(loaded, chosen_policy, settings.risk_band_cuts, reasons, available)
    return PreparedRun(loaded, chosen_policy, loaded_history, scorer, audit)


def register(app: typer.Typer) -> None:
    """Add the batch scoring command to the CLI."""
    app.command()(score)

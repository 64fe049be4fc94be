"""`arscore score`: score every open balance into one Parquet file, here or on a Dask cluster."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
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
)

DEFAULT_JOBS = os.cpu_count() or 1
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
    from arscore.database import migrated_engine
    from arscore.secrets import load_pseudonym_key
    from serving.audit.store import AuditStore
    from serving.batch.files import write_scored
    from serving.batch.run import Source, prepare_run, scored_tables
    from serving.settings import get_settings

    if (history is None) == (snapshots is None):
        raise typer.BadParameter("give exactly one of --history DIR or --snapshots FILE")
    if history is not None and as_of is None:
        raise typer.BadParameter("--history needs --as-of DATE", param_hint="--as-of")
    started = time.perf_counter()
    when = pd.Timestamp(as_of).normalize() if as_of is not None else None
    jobs = jobs or (1 if snapshots is not None else DEFAULT_JOBS)
    source = Source(snapshots, when, chunk_rows, claims_per_partition, jobs)
    address = cluster_address(cluster)
    settings = get_settings()
    with ExitStack() as stack:
        engine = stack.enter_context(migrated_engine())  # fails fast before the model loads
        run = prepare_run(
            AuditStore(engine),
            settings,
            history=history,
            snapshots=snapshots,
            model=model,
            policy=policy,
            reasons=reasons,
            pseudonym_key=load_pseudonym_key() if history is not None else None,
            now=dt.datetime.now(dt.UTC),
        )
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
        tables, total = scored_tables(client, run, source)
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


def register(app: typer.Typer) -> None:
    """Add the batch scoring command to the CLI."""
    app.command()(score)

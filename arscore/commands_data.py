"""`arscore generate` and `arscore dataset`: synthetic history and the snapshot table."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from arscore.io import write_frame_atomic
from arscore.progress import progress_bar
from arscore.secrets import load_pseudonym_key
from features.errors import ArscoreError
from features.history import read_history
from features.patient_partitions import SCHEDULER_ENV, build_snapshots_on
from features.snapshots import LabelConfig, snapshot_calendar


def generate(
    out: Annotated[
        Path | None, typer.Option(help="output directory for claims and transactions")
    ] = None,
    claims: Annotated[int, typer.Option(min=1, help="number of claims to generate")] = 10_000,
    seed: Annotated[
        int, typer.Option(help="random seed; the same seed gives the same history")
    ] = 7,
    end_date: Annotated[
        dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="last date of the history")
    ] = dt.datetime(2026, 9, 30),
    months: Annotated[int, typer.Option(min=1, help="months of history before end-date")] = 24,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "parquet",
    x12: Annotated[
        Path | None,
        typer.Option(help="also (or only) write it as 837/835 files and patient_events.csv here"),
    ] = None,
) -> None:
    """Generate a realistic synthetic claims history (seeded)."""
    from training.synthetic import GeneratorConfig, generate_history, write_history

    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter("expected csv or parquet", param_hint="--format")
    if out is None and x12 is None:
        raise typer.BadParameter("give --out, --x12 or both", param_hint="--out")
    config = GeneratorConfig(n_claims=claims, seed=seed, end_date=end_date.date(), months=months)
    started = time.perf_counter()
    with progress_bar("generating claims", claims) as advance:
        done = 0

        def report(completed: int) -> None:
            nonlocal done
            advance(completed - done)
            done = completed

        claims_frame, transactions = generate_history(config, progress=report)
    if out is not None:
        paths = write_history(claims_frame, transactions, out, fmt)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        typer.echo(
            f"wrote {len(claims_frame):,} claims and {len(transactions):,} transactions "
            f"in {elapsed:.1f} s: {paths[0]}, {paths[1]}"
        )
    if x12 is not None:
        _write_x12(claims_frame, transactions, x12)


def _write_x12(claims: pd.DataFrame, transactions: pd.DataFrame, folder: Path) -> None:
    """The generated history as 837 and 835 files plus patient_events.csv."""
    from training.synthetic.x12 import write_x12

    started = time.perf_counter()
    try:
        written = write_x12(claims, transactions, folder)
    except FileExistsError as error:
        raise ArscoreError(str(error)) from None
    typer.echo(
        f"wrote {len(written.claim_files):,} 837 files and {len(written.remit_files):,} 835 "
        f"files ({written.remitted_transactions:,} transactions) and "
        f"{written.patient_transactions:,} patient events in "
        f"{time.perf_counter() - started:.1f} s: {folder}"
    )


def dataset(
    history: Annotated[Path, typer.Option(help="history directory (claims + transactions)")],
    out: Annotated[Path, typer.Option(help="output snapshot table (.parquet or .csv)")],
    horizon_days: Annotated[int, typer.Option(min=1, help="label horizon H in days")] = 90,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="recovered fraction that counts as collected")
    ] = 0.5,
    freq: Annotated[str, typer.Option(help="snapshot calendar (pandas frequency)")] = "ME",
    start: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="first as-of date")
    ] = None,
    end: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="last as-of date")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help=f"build on a Dask cluster: scheduler address or local:N [env: {SCHEDULER_ENV}]",
            envvar=SCHEDULER_ENV,
        ),
    ] = None,
) -> None:
    """Build point-in-time snapshots of open balances with forward-looking labels."""
    started = time.perf_counter()
    loaded = read_history(history, load_pseudonym_key())
    first = pd.Timestamp(start) if start else loaded.claims["billed_date"].min()
    last = pd.Timestamp(end) if end else loaded.transactions["date"].max()
    calendar = snapshot_calendar(first, last, freq)
    with progress_bar("building snapshots", len(calendar)) as advance:
        snapshots = build_snapshots_on(
            cluster, loaded, calendar, LabelConfig(horizon_days, threshold), progress=advance
        )
    write_frame_atomic(snapshots, out)
    elapsed = time.perf_counter() - started
    labelled = int((~snapshots["censored"]).sum()) if len(snapshots) else 0
    typer.echo(
        f"read {len(loaded.transactions):,} transactions, wrote {len(snapshots):,} snapshots "
        f"({labelled:,} labelled, {len(snapshots) - labelled:,} censored) "
        f"over {len(calendar)} as-of dates in {elapsed:.1f} s: {out}"
    )


def register(app: typer.Typer) -> None:
    """Add the data commands to the CLI."""
    app.command()(generate)
    app.command()(dataset)

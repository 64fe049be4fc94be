"""`arscore train`, `arscore promote` and `arscore models`: fit, register and promote models."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.errors import ArscoreError

MODEL_METRICS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier",
    "ece": "ECE",
    "dollars_share_top20": "top-20% $",
    "expected_to_recovered_dollars": "exp/rec $",
}
WIDE_OUTPUT = 140


def _console() -> Console:
    """A console that does not squeeze tables to 80 columns when output is not a terminal."""
    console = Console()
    return console if console.is_terminal else Console(width=WIDE_OUTPUT)


BOOLEAN_TEXT = {"True": True, "False": False, "true": True, "false": False}


def read_snapshots(path: Path) -> pd.DataFrame:
    """A labelled snapshot table written by ``arscore dataset`` (.parquet, or .csv re-typed)."""
    path = Path(path)
    if not path.is_file():
        raise ArscoreError(f"{path}: snapshot file not found")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix != ".csv":
        raise ArscoreError(f"{path}: expected a .parquet or .csv snapshot table")
    frame = pd.read_csv(path, dtype={"claim_id": "string", "place_of_service": "string"})
    for column in frame.columns:
        if column == "as_of" or column.endswith("_date"):
            frame[column] = pd.to_datetime(frame[column], errors="coerce")
        elif frame[column].dtype == object or isinstance(frame[column].dtype, pd.StringDtype):
            values = set(frame[column].dropna().unique())
            if values and values <= set(BOOLEAN_TEXT):
                frame[column] = frame[column].map(BOOLEAN_TEXT).astype("boolean")
    return frame


def _overrides(
    assignments: list[str],
    horizon_days: int | None,
    train_end: dt.datetime | None,
    valid_end: dt.datetime | None,
    calibration: str | None,
    seed: int | None,
) -> dict[str, Any]:
    from training.config import parse_overrides

    overrides = parse_overrides(assignments)
    named = {
        "horizon_days": horizon_days,
        "train_end": train_end.date() if train_end else None,
        "valid_end": valid_end.date() if valid_end else None,
        "calibration": calibration,
        "seed": seed,
    }
    overrides.update({key: value for key, value in named.items() if value is not None})
    return overrides


def _metrics_table(metrics: dict[str, dict[str, float]]) -> Table:
    table = Table(title="Test window")
    table.add_column("model")
    for label in MODEL_METRICS.values():
        table.add_column(label, justify="right")
    for model, values in metrics.items():
        table.add_row(
            model, *(f"{values.get(metric, float('nan')):.4f}" for metric in MODEL_METRICS)
        )
    return table


def _split_table(summary: pd.DataFrame) -> Table:
    table = Table(title="Split (by as-of date, leakage guard applied)")
    for column in ("split", "first as-of", "last as-of", "balances", "collected"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for row in summary.itertuples():
        table.add_row(
            row.split, row.first_as_of, row.last_as_of, f"{row.rows:,}", f"{row.collected_rate:.1%}"
        )
    return table


def train(
    history: Annotated[
        Path | None, typer.Option(help="history directory (claims + transactions)")
    ] = None,
    snapshots: Annotated[
        Path | None, typer.Option(help="labelled snapshot table from `arscore dataset`")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="training config (YAML)")] = None,
    out: Annotated[
        Path | None, typer.Option(help="report directory [default: models/reports/<run>]")
    ] = None,
    horizon_days: Annotated[int | None, typer.Option(min=1, help="label horizon H")] = None,
    train_end: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="last train as-of date")
    ] = None,
    valid_end: Annotated[
        dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="last validation as-of date")
    ] = None,
    calibration: Annotated[str | None, typer.Option(help="auto, isotonic or sigmoid")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override any config key, e.g. lightgbm.num_leaves=15"),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="train on a Dask cluster: scheduler address or local:N "
            "[env: ARSCORE_DASK_SCHEDULER]",
            envvar="ARSCORE_DASK_SCHEDULER",
        ),
    ] = None,
) -> None:
    """Train a model, evaluate it against the baselines, register it as the challenger."""
    from training.config import load_config
    from training.train import current_git_commit
    from training.train import train as run_training

    if cluster:
        from functools import partial

        from training.dask_fit import train_on_cluster

        run_training = partial(train_on_cluster, cluster=cluster)

    if (history is None) == (snapshots is None):
        raise typer.BadParameter("give exactly one of --history DIR or --snapshots FILE")
    resolved = load_config(
        config, _overrides(set_ or [], horizon_days, train_end, valid_end, calibration, seed)
    )
    created_at = dt.datetime.now(dt.UTC)
    run_name = f"{resolved.model_name}-{created_at:%Y%m%d-%H%M%S}"
    out = out or Path("models") / "reports" / run_name
    console = _console()
    if history is not None:
        from arscore.secrets import load_pseudonym_key
        from features.history import read_history

        console.print(f"reading history from {history} ...")
        source: Any = read_history(history, load_pseudonym_key())
    else:
        source = read_snapshots(snapshots)  # type: ignore[arg-type]
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        result = run_training(
            source,
            resolved,
            out,
            created_at=created_at,
            git_commit=current_git_commit(),
            run_name=run_name,
            progress=progress,
        )
    console.print(_split_table(result.split_summary))
    console.print(_metrics_table(result.metrics))
    console.print(f"model card: {result.model_card[1]} (markdown: {result.model_card[0]})")
    console.print(f"plots:      {', '.join(str(p) for p in result.plots)}")
    console.print(f"model:      {result.model_dir} (sha256 {result.artifact_sha256[:16]}...)")
    console.print(
        f"registered {resolved.model_name} version {result.version} as @challenger "
        f"(run {result.run_id}, registry {result.tracking_uri})"
    )
    console.print(f'to promote: arscore promote {result.version} --reason "..."', highlight=False)


def promote(
    version: Annotated[
        str, typer.Argument(help="registered version (or 'challenger') to make the champion")
    ],
    reason: Annotated[str, typer.Option(help="why (kept in the promotion log)")],
    force: Annotated[
        bool, typer.Option(help="promote even if not better than the champion (logged)")
    ] = False,
    user: Annotated[str | None, typer.Option(help="who promotes [default: login name]")] = None,
    model_name: Annotated[str, typer.Option(help="registered model name")] = "arscore",
) -> None:
    """Move the champion alias to a version if it beats the champion on the same test window."""
    from training import registry

    record = registry.promote(
        version,
        reason,
        force=force,
        user=user or getpass.getuser(),
        at=dt.datetime.now(dt.UTC),
        model_name=model_name,
    )
    previous = record["from_version"] or "none"
    typer.echo(f"{model_name}@champion: version {previous} -> {record['to_version']}")
    for problem in record["overridden"]:
        typer.secho(f"overridden with --force: {problem}", fg=typer.colors.YELLOW)
    typer.echo(f"logged to {registry.promotion_log_path()}")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def models(
    model_name: Annotated[str, typer.Option(help="registered model name")] = "arscore",
) -> None:
    """Registered versions with aliases and key test metrics, and the promotion history."""
    from training import registry

    listing = registry.list_models(model_name)
    console = _console()
    table = Table(title=f"{model_name} versions ({registry.tracking_uri()})")
    for column in ("version", "aliases", "created", "test window", "ROC AUC", "top-20% $", "ECE"):
        table.add_column(column)
    table.add_column("sha256")
    for v in listing.versions:
        table.add_row(
            v["version"],
            ", ".join(v["aliases"]),
            v["created_at"],
            v["test_window"],
            _number(v["roc_auc"]),
            _number(v["dollars_share_top20"]),
            _number(v["ece"]),
            (v["artifact_sha256"] or "")[:12],
        )
    console.print(table)
    if not listing.promotions:
        console.print("no promotions yet")
        return
    history = Table(title=f"promotions ({registry.promotion_log_path()})")
    for column in ("at", "by", "from", "to", "forced", "reason"):
        history.add_column(column)
    for record in listing.promotions:
        history.add_row(
            record["at"],
            record["by"],
            str(record["from_version"] or "-"),
            str(record["to_version"]),
            "yes" if record["forced"] else "no",
            record["reason"],
        )
    console.print(history)


def register(app: typer.Typer) -> None:
    """Add the model commands to the CLI."""
    app.command()(train)
    app.command()(promote)
    app.command()(models)

"""`arscore forecast train | cash | backtest`: the 13-week cash forecast of today's open A/R."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from arscore.forecast_page import forecast_page
from arscore.io import write_frame_atomic
from features.errors import ArscoreError

DEFAULT_MODEL_URI = "models:/arscore-cash@champion"
MODEL_URI_ENV = "ARSCORE_CASH_MODEL_URI"
WIDE_OUTPUT = 160

forecast_app = typer.Typer(
    help="The 13-week cash forecast of today's open A/R: train, forecast, backtest.",
    no_args_is_help=True,
)


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=WIDE_OUTPUT)


def _config(config: Path | None, assignments: list[str] | None, origins: int | None) -> Any:
    from training.config import parse_overrides
    from training.forecast.config import load_forecast_config

    overrides = parse_overrides(assignments or [])
    if origins is not None:
        overrides["origins"] = origins
    return load_forecast_config(config, overrides)


def _history(path: Path) -> Any:
    from arscore.secrets import load_pseudonym_key
    from features.history import read_history

    return read_history(path, load_pseudonym_key())


def _percent(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.1%}"


def backtest_rich_table(table: pd.DataFrame, title: str) -> Table:
    """The per-week backtest table for the terminal."""
    out = Table(title=title)
    columns = {
        "week": "week",
        "wape_model": "WAPE model",
        "wape_liquidation_curve": "WAPE liq. curve",
        "wape_trailing_13_weeks": "WAPE trailing 13w",
        "bias_model": "bias model",
        "bias_liquidation_curve": "bias liq. curve",
        "pinball_model": "pinball",
        "coverage_80": "cover 80%",
        "coverage_95": "cover 95%",
    }
    for label in columns.values():
        out.add_column(label, justify="right")
    for record in table.to_dict("records"):
        cells = [str(record["week"])]
        for column in list(columns)[1:]:
            value = record[column]
            cells.append(f"{value:.3f}" if column == "pinball_model" else _percent(value))
        out.add_row(*cells)
    return out


def _print_backtest(result: Any, console: Console) -> None:
    dates = result.run.calendar.evaluation
    title = f"Backtest: {len(dates)} monthly origins {dates[0].date()} to {dates[-1].date()}"
    console.print(backtest_rich_table(result.table, title))
    summary = result.summary
    console.print(
        f"weeks 1-13: WAPE {summary['wape_model']:.1%} (liquidation curve "
        f"{summary['wape_liquidation_curve']:.1%}, trailing 13 weeks "
        f"{summary['wape_trailing_13_weeks']:.1%}); {summary['wape_reduction_vs_liquidation']:.1%}"
        f" lower than the liquidation curve; coverage {summary['coverage_80']:.1%} (80%), "
        f"{summary['coverage_95']:.1%} (95%); at every weekly origin "
        f"{summary.get('weekly_origins_coverage_80', float('nan')):.1%} / "
        f"{summary.get('weekly_origins_coverage_95', float('nan')):.1%}",
        highlight=False,
    )
    for record in result.sides.to_dict("records"):
        console.print(
            f"{record['side']} cash: WAPE {record['wape_model']:.1%} (liquidation curve "
            f"{record['wape_liquidation_curve']:.1%}), bias {record['bias_model']:+.1%}",
            highlight=False,
        )


def _progress(console: Console) -> Any:
    def report(name: str, done: int, total: int) -> None:
        console.print(f"{name}: {done}/{total}", highlight=False)

    return report


@forecast_app.command()
def train(
    history: Annotated[Path, typer.Option(help="history directory (claims + transactions)")],
    config: Annotated[Path | None, typer.Option(help="forecast config (YAML)")] = None,
    out: Annotated[
        Path | None, typer.Option(help="report directory [default: models/reports/<run>]")
    ] = None,
    origins: Annotated[int | None, typer.Option(min=1, help="monthly backtest origins")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config key, e.g. formulation=hazard"),
    ] = None,
) -> None:
    """Backtest on rolling origins, fit on the whole history, register as @challenger."""
    from training.forecast.train import train_forecast
    from training.train import current_git_commit

    resolved = _config(config, set_, origins)
    created_at = dt.datetime.now(dt.UTC)
    run_name = f"{resolved.model_name}-{created_at:%Y%m%d-%H%M%S}"
    out = out or Path("models") / "reports" / run_name
    console = _console()
    console.print(f"reading history from {history} ...")
    result = train_forecast(
        _history(history),
        resolved,
        out,
        created_at=created_at,
        git_commit=current_git_commit(),
        run_name=run_name,
        progress=_progress(console),
    )
    _print_backtest(result.backtest, console)
    console.print(f"model card: {result.model_card[1]} (markdown: {result.model_card[0]})")
    console.print(f"model:      {result.model_dir} (sha256 {result.artifact_sha256[:16]}...)")
    console.print(
        f"registered {resolved.model_name} version {result.version} as @challenger "
        f"(run {result.run_id}, registry {result.tracking_uri})"
    )
    console.print(
        f"to promote: arscore promote {result.version} --model-name {resolved.model_name} "
        '--reason "..."',
        highlight=False,
    )


@forecast_app.command()
def backtest(
    history: Annotated[Path, typer.Option(help="history directory (claims + transactions)")],
    origins: Annotated[int, typer.Option(min=1, help="monthly origins to report on")] = 12,
    config: Annotated[Path | None, typer.Option(help="forecast config (YAML)")] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the per-week table here (.csv or .parquet)")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a config key, e.g. formulation=hazard"),
    ] = None,
) -> None:
    """Rolling monthly origins: WAPE, bias, pinball and coverage per week, against baselines."""
    from training.forecast.backtest import run_backtest

    resolved = _config(config, set_, origins)
    console = _console()
    result = run_backtest(_history(history), resolved, progress=_progress(console))
    _print_backtest(result, console)
    if out is not None:
        write_frame_atomic(result.table, out)
        console.print(f"wrote {out}")


def load_cash_model(uri: str) -> tuple[Any, str]:
    """The cash model a URI names (``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a saved
    directory) and a line saying which; a registered version's SHA-256 is checked."""
    from features.cash_model import CashForecastModel
    from features.model import artifact_sha256

    if not uri.startswith("models:/"):
        return CashForecastModel.load(Path(uri)), f"model: {uri}"
    import mlflow
    from mlflow.exceptions import MlflowException

    from training import registry

    name, _, ref = uri.removeprefix("models:/").partition("@")
    client = registry.client()
    try:
        if ref:
            version = client.get_model_version_by_alias(name, ref)
        else:
            name, _, number = name.partition("/")
            version = client.get_model_version(name, number)
        location = client.get_model_version_download_uri(name, str(version.version))
    except MlflowException:
        raise ArscoreError(
            f"{uri}: no such registered cash model; run `arscore forecast train` and promote it "
            f"(`arscore promote challenger --model-name {name} --reason ...`)"
        ) from None
    tags = version.tags or {}
    with tempfile.TemporaryDirectory(prefix="arscore-cash-model-") as scratch:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=scratch, tracking_uri=registry.tracking_uri()
            )
        )
        directory = local / tags.get(registry.TAG_MODEL_SUBDIR, "artifacts/cash_forecast_model")
        sha = artifact_sha256(directory)
        if sha != tags.get(registry.TAG_SHA):
            raise ArscoreError(
                f"{uri}: artifact SHA-256 {sha} does not match the registry record; refusing it"
            )
        model = CashForecastModel.load(directory)
    return model, f"model: {name} version {version.version} (sha256 {sha[:12]})"


def _write_outputs(frame: pd.DataFrame, page: str, out: Path) -> Path:
    """The forecast table at ``out`` and its page beside it (``.html``), each renamed into
    place only once written; the page goes last, after the table is in place."""
    write_frame_atomic(frame, out)
    page_path = out.with_suffix(".html")
    fd, temp_name = tempfile.mkstemp(
        prefix=f".{page_path.name}.", suffix=".tmp", dir=page_path.parent
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.replace(temp_name, page_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return page_path


def forecast_rich_table(frame: pd.DataFrame, group_columns: tuple[str, ...]) -> Table:
    """The total rows of a forecast for the terminal."""
    total = frame
    for column in group_columns:
        total = total[total[column].isna()]
    out = Table(title=f"Cash forecast of the A/R open on {frame['as_of'].iloc[0].date()}")
    for label in ("week", "days", "expected", "80% interval", "95% interval"):
        out.add_column(label, justify="right")
    for r in total.to_dict("records"):
        out.add_row(
            str(r["week"]),
            f"{r['week_start'].date()}..{r['week_end'].date()}",
            f"${r['expected']:,.0f}",
            f"${r['lower_80']:,.0f} - ${r['upper_80']:,.0f}",
            f"${r['lower_95']:,.0f} - ${r['upper_95']:,.0f}",
        )
    return out


@forecast_app.command()
def cash(
    history: Annotated[Path, typer.Option(help="history directory (claims + transactions)")],
    as_of: Annotated[
        dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="forecast the A/R open on this date")
    ],
    out: Annotated[Path, typer.Option(help="forecast table (.csv or .parquet); page beside it")],
    weeks: Annotated[int, typer.Option(min=1, help="weeks ahead (at most the model's)")] = 13,
    by: Annotated[
        str | None, typer.Option(help="break down by payer_type and/or responsibility")
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help=f"cash model URI or directory [env: {MODEL_URI_ENV}]", envvar=MODEL_URI_ENV
        ),
    ] = DEFAULT_MODEL_URI,
) -> None:
    """Expected cash per week from the balances open at --as-of, with 80% and 95% intervals."""
    from features.cash_forecast import forecast_cash, parse_breakdown

    if out.suffix not in (".csv", ".parquet"):
        raise typer.BadParameter("expected a .csv or .parquet file", param_hint="--out")
    breakdown = parse_breakdown(by)
    loaded, model_text = load_cash_model(model)
    validated = _history(history)
    data_end = pd.Timestamp(validated.transactions["date"].max())
    if pd.Timestamp(as_of) > data_end:
        raise ArscoreError(
            f"--as-of {as_of.date()} is after the history's last transaction ({data_end.date()}): "
            "the history does not say what happened since; forecast as of that date or earlier"
        )
    frame = forecast_cash(validated, loaded, pd.Timestamp(as_of), weeks, breakdown)
    page_path = _write_outputs(frame, forecast_page(frame, breakdown, model_text), out)
    console = _console()
    console.print(forecast_rich_table(frame, breakdown))
    console.print(model_text, highlight=False)
    console.print(f"wrote {out} and {page_path}")


def register(app: typer.Typer) -> None:
    """Add `arscore forecast ...` to the CLI."""
    app.add_typer(forecast_app, name="forecast")

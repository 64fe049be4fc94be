"""`arscore load`, `arscore rescore` and `arscore writeoffs report`: the server's open balances
and the write-off documentation, from the command line."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from arscore.database import migrated_engine

writeoffs_app = typer.Typer(
    help="Write-off documentation for finance and auditors.", no_args_is_help=True
)


def _as_of(value: dt.datetime | None) -> dt.date:
    return value.date() if value is not None else dt.date.today()


def _rescore(engine: Engine, as_of: dt.date, with_reasons: bool, trigger: str) -> None:
    from serving.audit.store import AuditStore
    from serving.policy.config import load_policy, stamped_policy_version
    from serving.scoring.loader import load_model
    from serving.settings import get_settings
    from serving.worklist.rescoring import rescore

    settings = get_settings()
    started = time.perf_counter()
    loaded = load_model(
        settings.model_uri, settings.mlflow_tracking_uri, now=dt.datetime.now(dt.UTC)
    )
    policy = load_policy(settings.policy_file)
    result = rescore(
        engine,
        AuditStore(engine),
        loaded,
        policy,
        stamped_policy_version(policy, settings.risk_band_cuts, settings.reasons_per_score),
        as_of,
        risk_band_cuts=tuple(settings.risk_band_cuts),
        with_reasons=with_reasons,
        trigger=trigger,
    )
    typer.echo(
        f"rescored {result.n_accounts:,} open balances as of {result.as_of} "
        f"({result.n_on_hold:,} on hold) with model version {result.model_version}, policy "
        f"{result.policy_version} in {time.perf_counter() - started:.1f} s"
    )


AsOf = Annotated[
    dt.datetime | None,
    typer.Option(formats=["%Y-%m-%d"], help="score as of this date (default: today)"),
]
Reasons = Annotated[bool, typer.Option("--reasons/--no-reasons", help="explain each score")]


def load(
    history: Annotated[Path, typer.Option(help="history directory (claims + transactions)")],
    as_of: AsOf = None,
    rescore: Annotated[
        bool, typer.Option("--rescore/--no-rescore", help="rescore the open balances after")
    ] = True,
    reasons: Reasons = True,
) -> None:
    """Load a history directory into the server's store (idempotent), then rescore."""
    from arscore.secrets import load_pseudonym_key
    from features.history import read_history
    from serving.history.store import HistoryStore

    loaded = read_history(history, load_pseudonym_key())
    with migrated_engine() as engine:
        result = HistoryStore(engine).upsert(loaded.claims, loaded.transactions)
        typer.echo(
            f"claims: {result.claims_new:,} new, {result.claims_updated:,} updated; "
            f"transactions: {result.transactions_new:,} new, "
            f"{result.transactions_duplicate:,} already stored"
        )
        if rescore:
            _rescore(engine, _as_of(as_of), reasons, "load")


def rescore_command(as_of: AsOf = None, reasons: Reasons = True) -> None:
    """Score every stored open balance with the current model and policy (the worklist)."""
    with migrated_engine() as engine:
        _rescore(engine, _as_of(as_of), reasons, "cli")


@writeoffs_app.command("report")
def writeoffs_report(
    period: Annotated[str, typer.Option(help="the month, YYYY-MM")],
    out: Annotated[Path, typer.Option(help="output directory")] = Path("reports"),
) -> None:
    """Write-offs of a month per category and payer: CSV (lines, totals) and an HTML page."""
    from serving.worklist.writeoffs import build_report, write_report

    with migrated_engine() as engine:
        report = build_report(engine, period)
    paths = write_report(report, out)
    typer.echo(
        f"{report.count:,} write-offs, ${report.amount:,.2f} in {report.period}: "
        + ", ".join(str(p) for p in paths)
    )


def register(app: typer.Typer) -> None:
    """Add load, rescore and writeoffs to the CLI."""
    app.command("load")(load)
    app.command("rescore")(rescore_command)
    app.add_typer(writeoffs_app, name="writeoffs")

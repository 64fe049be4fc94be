"""``arscore audit ...``: the compliance record (users and keys: ``arscore.commands_users``)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from arscore.database import migrated_engine
from features.errors import ArscoreError
from serving.audit.records import AuditError
from serving.audit.store import AuditStore
from serving.settings import get_settings

audit_app = typer.Typer(help="The audit trail: verify, export, purge.", no_args_is_help=True)


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to the arscore CLI."""
    app.add_typer(audit_app, name="audit")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected an ISO date YYYY-MM-DD, got {value!r}") from None


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 1 and name the first bad record when it is broken."""
    with migrated_engine() as engine:
        try:
            report = AuditStore(engine).verify()
        except AuditError as exc:
            raise _fail(str(exc)) from None
    if not report.ok:
        raise _fail(
            f"audit chain BROKEN at seq {report.first_bad_seq} ({report.problem}): {report.message}"
        )
    typer.echo(f"audit chain intact: {report.n_records} records, last seq {report.last_seq}")
    typer.echo(f"head hash: {report.last_hash} (keep a copy outside the database)")


@audit_app.command("export")
def audit_export(
    start: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD (UTC)")],
    end: Annotated[str, typer.Option("--to", help="last day, YYYY-MM-DD (UTC), inclusive")],
    out: Annotated[Path, typer.Option(help="file to write (replaced atomically)")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv or parquet")] = (
        ExportFormat.csv
    ),
) -> None:
    """Export the records created in a date range to CSV or Parquet."""
    first, last = _parse_date(start), _parse_date(end)
    with migrated_engine() as engine:
        try:
            n_rows = AuditStore(engine).export(first, last, fmt.value, out)
        except (AuditError, ValueError) as exc:
            raise _fail(str(exc)) from None
    typer.echo(f"wrote {n_rows} records from {first} to {last} to {out}")


@audit_app.command("purge")
def audit_purge(
    as_of: Annotated[
        str | None, typer.Option(help="the purge's 'today', YYYY-MM-DD (default: today)")
    ] = None,
) -> None:
    """Delete the records older than the retention period (ARSCORE_AUDIT_RETENTION_DAYS)."""
    today = _parse_date(as_of) if as_of else date.today()
    retention_days = get_settings().audit_retention_days
    with migrated_engine() as engine:
        try:
            n_purged = AuditStore(engine).purge_expired(retention_days, today)
        except (AuditError, ArscoreError) as exc:
            raise _fail(str(exc)) from None
    typer.echo(f"purged {n_purged} records older than {retention_days} days before {today}")

"""``arscore keys ...`` and ``arscore audit ...``: API keys and the compliance record."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from arscore.database import migrated_engine
from features.errors import ArscoreError
from serving.access.keys import ROLES, KeyStore
from serving.audit.records import AuditError
from serving.audit.store import AuditStore
from serving.settings import get_settings

keys_app = typer.Typer(
    help="API keys: create (token shown once), list, revoke.", no_args_is_help=True
)
audit_app = typer.Typer(help="The audit trail: verify, export, purge.", no_args_is_help=True)


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


def register(app: typer.Typer) -> None:
    """Add the ``keys`` and ``audit`` command groups to the arscore CLI."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected an ISO date YYYY-MM-DD, got {value!r}") from None


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help=f"one of {', '.join(ROLES)}")],
    label: Annotated[str, typer.Option(help="who or what the key is for")] = "",
) -> None:
    """Create an API key and print its token (shown only this once)."""
    if role not in ROLES:
        raise _fail(f"unknown role '{role}': expected one of {', '.join(ROLES)}")
    with migrated_engine() as engine:
        key_id, token = KeyStore(engine).create(role, label)
    typer.echo(f"key_id: {key_id}")
    typer.echo(f"role:   {role}")
    typer.echo(f"token:  {token}")
    typer.echo(
        "Store the token now: it is kept only as a hash and cannot be shown again.", err=True
    )


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their tokens)."""
    with migrated_engine() as engine:
        keys = KeyStore(engine).list()
    table = Table("key_id", "role", "label", "created_at", "status")
    for key in keys:
        status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        table.add_row(key.key_id, key.role, key.label, f"{key.created_at:%Y-%m-%d %H:%M}", status)
    Console(width=120).print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key_id shown by `keys list`")],
) -> None:
    """Revoke an API key (other server workers stop accepting it within a minute)."""
    with migrated_engine() as engine:
        revoked = KeyStore(engine).revoke(key_id)
    if not revoked:
        raise _fail(f"no active key with key_id '{key_id}'")
    typer.echo(f"revoked {key_id}")


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

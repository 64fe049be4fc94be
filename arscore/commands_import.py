"""`arscore import x12` and `arscore import fhir`: what billing systems export, as a history.

Both write a history directory in the interchange format (``claims`` and ``transactions``, CSV
or Parquet) that every other command reads like any history, plus ``import_warnings.csv``
(every warning with where it stands) and, for X12, ``provider_ledger.csv`` (PLB adjustments
that are no claim's). The claims keep the patient identifier as the billing system sent it,
like any export in the interchange format; arscore pseudonymizes it when it reads the history.
Everything is validated before anything is written, and written through temporary files renamed
into place together.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from arscore.progress import progress_bar
from features.errors import ArscoreError
from features.fhir import FhirImport, fhir_files, read_fhir
from features.history import read_raw, validate_history
from features.importing import merge_patient_events, warnings_frame
from features.schema import CLAIMS_FILE_STEM, TRANSACTIONS_FILE_STEM
from features.x12 import X12Import, read_x12, x12_files

LEDGER_FILE = "provider_ledger.csv"
WARNINGS_FILE = "import_warnings.csv"
WARNINGS_SHOWN = 5

import_app = typer.Typer(
    help="Read what billing systems export (X12 837/835, FHIR ExplanationOfBenefit) into a "
    "history in the interchange format.",
    no_args_is_help=True,
)

OutOption = Annotated[Path, typer.Option(help="output history directory")]
EventsOption = Annotated[
    Path | None,
    typer.Option(help="the billing system's own events: an interchange-format transactions table"),
]
FormatOption = Annotated[str, typer.Option("--format", help="csv or parquet")]


@import_app.command("x12")
def import_x12(
    out: OutOption,
    claims: Annotated[
        list[Path] | None,
        typer.Option(help="837 claim file or folder (repeat the option for more)"),
    ] = None,
    remits: Annotated[
        list[Path] | None,
        typer.Option(help="835 remittance file or folder (repeat the option for more)"),
    ] = None,
    patient_events: EventsOption = None,
    fmt: FormatOption = "parquet",
) -> None:
    """Read X12 837 claims and 835 remittances (4010 or 5010, gzip too) into a history."""
    _check_format(fmt, out)
    if not claims and not remits:
        raise typer.BadParameter("give --claims, --remits or both", param_hint="--claims")
    claim_paths, remit_paths = list(claims or []), list(remits or [])
    total = sum(path.stat().st_size for path in x12_files(claim_paths + remit_paths))
    started = time.perf_counter()
    with progress_bar("reading X12", total, in_bytes=True) as advance:
        result = read_x12(claim_paths, remit_paths, progress=advance)
    elapsed = time.perf_counter() - started
    transactions = _with_patient_events(result.claims, result.transactions, patient_events)
    written = _write(out, fmt, result.claims, transactions, result.warnings, result.provider_ledger)
    for line in x12_summary(result, elapsed):
        typer.echo(line)
    _echo_written(written, result.claims, transactions)


@import_app.command("fhir")
def import_fhir(
    out: OutOption,
    eob: Annotated[
        list[Path],
        typer.Option(help="ExplanationOfBenefit JSON, NDJSON or Bundle file or folder (repeat)"),
    ],
    patient_events: EventsOption = None,
    fmt: FormatOption = "parquet",
) -> None:
    """Read FHIR R4 ExplanationOfBenefit resources (CARIN Blue Button too) into a history."""
    _check_format(fmt, out)
    paths = list(eob)
    total = sum(path.stat().st_size for path in fhir_files(paths))
    started = time.perf_counter()
    with progress_bar("reading FHIR", total, in_bytes=True) as advance:
        result = read_fhir(paths, progress=advance)
    elapsed = time.perf_counter() - started
    transactions = _with_patient_events(result.claims, result.transactions, patient_events)
    written = _write(out, fmt, result.claims, transactions, result.warnings, None)
    for line in fhir_summary(result, elapsed):
        typer.echo(line)
    _echo_written(written, result.claims, transactions)


def _check_format(fmt: str, out: Path) -> None:
    """csv or parquet, and no table of the other format left in the output to shadow it."""
    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter("expected csv or parquet", param_hint="--format")
    other = "csv" if fmt == "parquet" else "parquet"
    for stem in (CLAIMS_FILE_STEM, TRANSACTIONS_FILE_STEM):
        if (out / f"{stem}.{other}").exists():
            raise ArscoreError(
                f"{out / f'{stem}.{other}'} exists and would be read instead of (or beside) the "
                f"new {fmt} tables: remove it or choose another --out"
            )


def _with_patient_events(
    claims: pd.DataFrame, transactions: pd.DataFrame, events: Path | None
) -> pd.DataFrame:
    """The imported transactions and the patient events file, validated together with the
    claims (a throwaway key: nothing pseudonymized here is kept)."""
    if events is not None:
        transactions = merge_patient_events(claims, transactions, read_raw(events), str(events))
    validate_history(
        claims,
        transactions,
        secrets.token_bytes(32),
        claims_source="claims (as imported)",
        transactions_source="transactions (as imported)",
    )
    return transactions


def _write(
    out: Path,
    fmt: str,
    claims: pd.DataFrame,
    transactions: pd.DataFrame,
    warnings: list,
    ledger: pd.DataFrame | None,
) -> list[Path]:
    """Every output through a temporary file, renamed into place once all are written."""
    frames = {
        out / f"{CLAIMS_FILE_STEM}.{fmt}": claims,
        out / f"{TRANSACTIONS_FILE_STEM}.{fmt}": transactions,
        out / WARNINGS_FILE: warnings_frame(warnings),
    }
    if ledger is not None:
        frames[out / LEDGER_FILE] = ledger
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for path, frame in frames.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=out)
            os.close(handle)
            staged.append((temporary, path))
            if path.suffix == ".parquet":
                frame.to_parquet(temporary, index=False)
            else:
                frame.to_csv(temporary, index=False, date_format="%Y-%m-%d", float_format="%.2f")
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)
    return list(frames)


def _echo_written(written: list[Path], claims: pd.DataFrame, transactions: pd.DataFrame) -> None:
    typer.echo(
        f"wrote {len(claims):,} claims and {len(transactions):,} transactions: "
        + ", ".join(str(path) for path in written)
    )


def _money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"


def _by_code(counts: dict, cents: dict) -> str:
    return (
        ", ".join(f"{code} {counts[code]:,} ({_money(cents[code])})" for code in sorted(counts))
        or "none"
    )


def _warning_lines(warnings: list, counts: dict) -> list[str]:
    if not warnings:
        return ["warnings: none"]
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(counts.items()))
    lines = [f"warnings: {len(warnings):,} ({kinds}), all in {WARNINGS_FILE}; the first:"]
    return lines + [f"  - {warning}" for warning in warnings[:WARNINGS_SHOWN]]


def x12_summary(result: X12Import, elapsed: float) -> list[str]:
    """The end-of-run summary of an X12 import, one line per subject."""
    summary, posting = result.summary, result.summary.posting
    sets = summary.transaction_sets
    rate = summary.segments / elapsed if elapsed > 0 else 0.0
    lines = [
        f"read {summary.files:,} files ({summary.bytes / 1e6:,.1f} MB): "
        f"{summary.interchanges:,} interchanges, {sum(sets.values()):,} transaction sets "
        f"({sets['837']:,} 837, {sets['835']:,} 835), {summary.segments:,} segments "
        f"in {elapsed:.1f} s ({rate:,.0f} segments/s)",
        f"claims: {summary.claims:,} from 837s, {summary.claims_from_remittances:,} built from "
        f"remittances, {summary.voided_claims:,} voided (left out)",
        f"service lines: {summary.billed_service_lines:,} billed, "
        f"{posting.service_lines:,} remitted",
        f"remittance claims: {posting.remittance_claims:,} ({posting.reversals:,} reversals); "
        f"payments: {posting.payments:,} ({_money(posting.payment_cents)})",
        "adjustments (CAS triplets): "
        + _by_code(posting.adjustment_triplets, posting.adjustment_cents),
        "provider-level adjustments (PLB): "
        + _by_code(posting.provider_adjustments, posting.provider_cents)
        + f"; {len(result.provider_ledger):,} in {LEDGER_FILE}",
    ]
    lines += [f"note: {note}: {count:,}" for note, count in sorted(posting.notes.items())]
    return lines + _warning_lines(result.warnings, summary.warnings)


def fhir_summary(result: FhirImport, elapsed: float) -> list[str]:
    """The end-of-run summary of a FHIR import."""
    summary = result.summary
    lines = [
        f"read {summary.files:,} files in {elapsed:.1f} s: {summary.resources:,} resources, "
        f"{summary.eobs:,} ExplanationOfBenefit ({summary.superseded:,} replaced by a later one, "
        f"{summary.skipped:,} skipped as cancelled or in error)",
        f"claims: {len(result.claims):,}; payments: {summary.payments:,} "
        f"({_money(summary.payment_cents)}); denials: {summary.denials:,}",
    ]
    lines += [f"note: {note}: {count:,}" for note, count in sorted(summary.notes.items())]
    return lines + _warning_lines(result.warnings, summary.warnings)


def register(app: typer.Typer) -> None:
    """Add `arscore import` to the CLI."""
    app.add_typer(import_app, name="import")

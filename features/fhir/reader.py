"""FHIR R4 ExplanationOfBenefit files into the interchange format's tables: ``read_fhir``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.fhir.eob import EobMapper, claim_identifier
from features.fhir.resources import FhirLocation, fhir_files, resources
from features.importing import ImportWarning, dates_of, text_column
from features.schema import CLAIM_COLUMNS, TRANSACTION_COLUMNS, column_names

SKIPPED_STATUSES = ("cancelled", "entered-in-error", "draft")
REPLACING = ("prior", "replaces")


@dataclass
class FhirSummary:
    """What a FHIR import read and posted."""

    files: int = 0
    resources: int = 0
    eobs: int = 0
    superseded: int = 0
    skipped: int = 0
    payments: int = 0
    payment_cents: int = 0
    denials: int = 0
    notes: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)


@dataclass
class FhirImport:
    """A history read from FHIR: claims (raw ``patient_id``), transactions, warnings, summary."""

    claims: pd.DataFrame
    transactions: pd.DataFrame
    warnings: list[ImportWarning]
    summary: FhirSummary


def read_fhir(paths: Sequence[Path], progress: Callable[[int], None] | None = None) -> FhirImport:
    """Read ExplanationOfBenefit resources into the interchange format's tables."""
    summary = FhirSummary()
    warnings: list[ImportWarning] = []
    eobs: list[tuple[FhirLocation, dict]] = []
    others: dict[str, dict] = {}
    for path in fhir_files(paths):
        for location, resource in resources(path):
            summary.resources += 1
            kind = resource.get("resourceType")
            if kind == "ExplanationOfBenefit":
                eobs.append((location, resource))
            elif kind in ("Patient", "Coverage", "Organization") and "id" in resource:
                others[f"{kind}/{resource['id']}"] = resource
        summary.files += 1
        if progress is not None:
            progress(path.stat().st_size)
    summary.eobs = len(eobs)
    mapper = EobMapper(others, warnings, summary)
    claims, rows = [], []
    for location, eob in _standing(eobs, summary):
        claim, events = mapper.map(location, eob)
        claims.append(claim)
        rows += events
    summary.warnings = Counter(w.kind for w in warnings)
    return FhirImport(_claims_frame(claims), _transactions_frame(rows), warnings, summary)


def _standing(eobs: list[tuple[FhirLocation, dict]], summary: FhirSummary) -> list:
    """The EOBs that stand: active, the latest of each claim, not replaced by another."""
    replaced = set()
    latest: dict[str, tuple[str, int, FhirLocation, dict]] = {}
    for order, (location, eob) in enumerate(eobs):
        if eob.get("status") in SKIPPED_STATUSES:
            summary.skipped += 1
            continue
        for related in eob.get("related", []):
            codes_ = [c.get("code") for c in related.get("relationship", {}).get("coding", [])]
            if any(code in REPLACING for code in codes_):
                replaced.add(_reference_id(related.get("claim", {})))
        claim_id = claim_identifier(eob)
        rank = (str(eob.get("created", "")), order)
        if claim_id in latest:
            summary.superseded += 1
            if rank < latest[claim_id][:2]:
                continue
        latest[claim_id] = (*rank, location, eob)
    standing = []
    for claim_id, (_, _, location, eob) in latest.items():
        if claim_id in replaced or eob.get("id") in replaced:
            summary.superseded += 1
            continue
        standing.append((location, eob))
    return standing


def _reference_id(reference: dict) -> str | None:
    identifier = reference.get("identifier", {}).get("value")
    target = reference.get("reference", "")
    return identifier or (target.rsplit("/", 1)[-1] if target else None)


def _claims_frame(claims: list[dict]) -> pd.DataFrame:
    """Claim rows (cents, CCYYMMDD) as the interchange format's claims table."""
    names = column_names(CLAIM_COLUMNS)
    columns = {name: [claim[name] for claim in claims] for name in names}
    return pd.DataFrame(
        {name: _column(name, values) for name, values in columns.items()}, columns=names
    )


def _transactions_frame(rows: list[dict]) -> pd.DataFrame:
    """Transaction rows as the interchange format's transactions table, by date and claim."""
    names = column_names(TRANSACTION_COLUMNS)
    columns = {name: [row.get(name) for row in rows] for name in names}
    frame = pd.DataFrame(
        {name: _column(name, values) for name, values in columns.items()}, columns=names
    )
    return frame.sort_values(["date", "claim_id"], kind="stable", ignore_index=True)


def _column(name: str, values: list) -> pd.Series:
    if name in ("service_date", "billed_date", "date"):
        return dates_of(values)
    if name in ("total_charge", "expected_amount", "amount"):
        return pd.Series([float("nan") if v is None else v / 100 for v in values], dtype="float64")
    if name == "patient_age":
        return pd.Series(pd.array(values, dtype="Int64"))
    return text_column(values)
